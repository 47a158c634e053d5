//! Protects the test modules of `tests/modules/` and their build harness
//! (`tests/support/modules.rs`): each of `chat`, `chat-v2`, `bank`,
//! `abi-coverage` and `hostile` builds from source against `spacetimedb = "=2.10.1"` for
//! wasm32, is a wasm 1 binary, exports what a host must find (`memory`,
//! `__describe_module__`, `__call_reducer__`), and imports only from the
//! `spacetime_10.x` namespaces (no WASI, no `env`). `abi-coverage` must import
//! every function a 2.10.1 module can use without `unstable`, or the ABI tests
//! built on it would leave imports untested.
//!
//! The wasm is read by a small section walker below rather than a parser
//! crate, to keep tenant-host's dev-dependencies unchanged.

#[path = "../../tests/support/modules.rs"]
mod modules;

use std::collections::BTreeSet;

/// Every import a 2.10.1 module can reference without the `unstable` feature
/// (module-abi §0 and §5.1: 28 minus the deprecated aliases and
/// `volatile_nonatomic_schedule_immediate`).
const STABLE_IMPORTS: &[(&str, &str)] = &[
    ("spacetime_10.0", "table_id_from_name"),
    ("spacetime_10.0", "index_id_from_name"),
    ("spacetime_10.0", "datastore_table_row_count"),
    ("spacetime_10.0", "datastore_table_scan_bsatn"),
    ("spacetime_10.0", "datastore_index_scan_range_bsatn"),
    (
        "spacetime_10.0",
        "datastore_delete_by_index_scan_range_bsatn",
    ),
    ("spacetime_10.0", "datastore_delete_all_by_eq_bsatn"),
    ("spacetime_10.0", "row_iter_bsatn_advance"),
    ("spacetime_10.0", "row_iter_bsatn_close"),
    ("spacetime_10.0", "datastore_insert_bsatn"),
    ("spacetime_10.0", "datastore_update_bsatn"),
    ("spacetime_10.0", "bytes_sink_write"),
    ("spacetime_10.0", "bytes_source_read"),
    ("spacetime_10.0", "console_log"),
    ("spacetime_10.0", "console_timer_start"),
    ("spacetime_10.0", "console_timer_end"),
    ("spacetime_10.0", "identity"),
    ("spacetime_10.1", "bytes_source_remaining_length"),
    ("spacetime_10.2", "get_jwt"),
    ("spacetime_10.3", "procedure_sleep_until"),
    ("spacetime_10.3", "procedure_start_mut_tx"),
    ("spacetime_10.3", "procedure_commit_mut_tx"),
    ("spacetime_10.3", "procedure_abort_mut_tx"),
    ("spacetime_10.3", "procedure_http_request"),
    ("spacetime_10.4", "datastore_index_scan_point_bsatn"),
    (
        "spacetime_10.4",
        "datastore_delete_by_index_scan_point_bsatn",
    ),
    ("spacetime_10.5", "datastore_clear"),
];

/// External kinds of the import and export sections.
const KIND_FUNC: u8 = 0;
const KIND_MEMORY: u8 = 2;

/// What the tests need from a module's import and export sections.
#[derive(Debug, Default)]
struct Linkage {
    /// (module, name, kind)
    imports: Vec<(String, String, u8)>,
    /// (name, kind)
    exports: Vec<(String, u8)>,
}

impl Linkage {
    fn export_kind(&self, name: &str) -> Option<u8> {
        self.exports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| *k)
    }

    fn import_set(&self) -> BTreeSet<(String, String)> {
        self.imports
            .iter()
            .map(|(module, name, _)| (module.clone(), name.clone()))
            .collect()
    }
}

/// A cursor over wasm bytes; every read fails with a message instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| format!("unexpected end at offset {}", self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn leb(&mut self) -> Result<u64, String> {
        let (mut value, mut shift) = (0u64, 0u32);
        loop {
            let b = self.byte()?;
            if shift >= 64 {
                return Err(format!("LEB128 too long at offset {}", self.pos));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("{len} bytes past the end at offset {}", self.pos))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn name(&mut self) -> Result<String, String> {
        let len = self.leb()? as usize;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|e| format!("name is not UTF-8: {e}"))
    }

    fn limits(&mut self) -> Result<(), String> {
        let flags = self.byte()?;
        self.leb()?;
        if flags & 1 != 0 {
            self.leb()?;
        }
        Ok(())
    }
}

/// Checks the header and reads the import and export sections.
fn read_linkage(bytes: &[u8]) -> Result<Linkage, String> {
    if bytes.get(0..4) != Some(b"\0asm") {
        return Err("missing the \\0asm magic".into());
    }
    if bytes.get(4..8) != Some(&[1, 0, 0, 0]) {
        return Err(format!("not wasm version 1: {:?}", bytes.get(4..8)));
    }
    let mut reader = Reader { bytes, pos: 8 };
    let mut linkage = Linkage::default();
    while reader.pos < bytes.len() {
        let id = reader.byte()?;
        let size = reader.leb()? as usize;
        let mut section = Reader {
            bytes: reader.take(size)?,
            pos: 0,
        };
        match id {
            2 => {
                for _ in 0..section.leb()? {
                    let module = section.name()?;
                    let name = section.name()?;
                    let kind = section.byte()?;
                    match kind {
                        0 => {
                            section.leb()?;
                        }
                        1 => {
                            section.byte()?;
                            section.limits()?;
                        }
                        2 => section.limits()?,
                        3 => {
                            section.byte()?;
                            section.byte()?;
                        }
                        4 => {
                            section.byte()?;
                            section.leb()?;
                        }
                        other => return Err(format!("import {module}::{name} has kind {other}")),
                    }
                    linkage.imports.push((module, name, kind));
                }
            }
            7 => {
                for _ in 0..section.leb()? {
                    let name = section.name()?;
                    let kind = section.byte()?;
                    section.leb()?;
                    linkage.exports.push((name, kind));
                }
            }
            _ => {}
        }
    }
    Ok(linkage)
}

/// Builds `name`, checks what every module must satisfy, and returns its linkage.
fn check_module(name: &str) -> Linkage {
    let bytes = modules::module_bytes(name);
    // The byte-level facts first, independent of the section walker.
    assert_eq!(&bytes[0..4], b"\0asm", "{name}: wasm magic");
    assert_eq!(&bytes[4..8], &[1, 0, 0, 0], "{name}: wasm version");
    for needle in [
        "__describe_module__",
        "__call_reducer__",
        "memory",
        "spacetime_10.0",
    ] {
        assert!(
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{name}: `{needle}` does not occur in the module"
        );
    }

    let linkage = read_linkage(&bytes).unwrap_or_else(|e| panic!("{name}: malformed wasm: {e}"));
    assert_eq!(
        linkage.export_kind("memory"),
        Some(KIND_MEMORY),
        "{name}: memory export"
    );
    for export in ["__describe_module__", "__call_reducer__"] {
        assert_eq!(
            linkage.export_kind(export),
            Some(KIND_FUNC),
            "{name}: export {export}"
        );
    }
    assert!(
        linkage
            .exports
            .iter()
            .any(|(export, _)| export.starts_with("__preinit__")),
        "{name}: no __preinit__ export"
    );
    for (module, import, kind) in &linkage.imports {
        let minor = module.strip_prefix("spacetime_10.");
        assert!(
            minor.is_some_and(|minor| matches!(minor, "0" | "1" | "2" | "3" | "4" | "5")),
            "{name}: import {module}::{import} is outside spacetime_10.0..=10.5"
        );
        assert_eq!(
            *kind, KIND_FUNC,
            "{name}: import {module}::{import} is not a function"
        );
    }
    assert!(
        linkage
            .imports
            .iter()
            .any(|(module, _, _)| module == "spacetime_10.0"),
        "{name}: imports nothing from spacetime_10.0"
    );
    linkage
}

#[test]
fn bank_builds_as_a_module() {
    check_module("bank");
}

#[test]
fn chat_builds_as_a_module() {
    check_module("chat");
}

#[test]
fn chat_v2_builds_as_a_module() {
    check_module("chat-v2");
}

#[test]
fn hostile_builds_as_a_module() {
    check_module("hostile");
}

#[test]
fn rls_builds_with_its_visibility_filters_registered() {
    let linkage = check_module("rls");
    for filter in ["OWN_DOCS", "TEAM_DOCS", "OWN_MEMBERSHIPS"] {
        let export = format!("__preinit__20_register_row_level_security_{filter}");
        assert_eq!(
            linkage.export_kind(&export),
            Some(KIND_FUNC),
            "rls: {export}"
        );
    }
}

#[test]
fn abi_coverage_builds_and_imports_every_stable_import() {
    let linkage = check_module("abi-coverage");
    let imports = linkage.import_set();
    let missing: Vec<String> = STABLE_IMPORTS
        .iter()
        .filter(|(module, name)| !imports.contains(&(module.to_string(), name.to_string())))
        .map(|(module, name)| format!("{module}::{name}"))
        .collect();
    assert!(
        missing.is_empty(),
        "abi-coverage no longer imports (add a reducer that uses them):\n{}",
        missing.join("\n")
    );
    for export in ["__call_procedure__", "__call_view__", "__call_view_anon__"] {
        assert_eq!(
            linkage.export_kind(export),
            Some(KIND_FUNC),
            "abi-coverage: export {export}"
        );
    }
}

#[test]
fn section_walker_reads_a_hand_written_module() {
    // (module (import "spacetime_10.0" "identity" (func (param i32)))
    //         (memory (export "memory") 1))
    let mut bytes = b"\0asm\x01\x00\x00\x00".to_vec();
    bytes.extend([1, 5, 1, 0x60, 1, 0x7f, 0]); // type section: (func (param i32))
    let mut import = vec![1, 14];
    import.extend(b"spacetime_10.0");
    import.push(8);
    import.extend(b"identity");
    import.extend([0, 0]);
    bytes.push(2);
    bytes.push(import.len() as u8);
    bytes.extend(import);
    bytes.extend([5, 3, 1, 0, 1]); // memory section: one memory, min 1
    bytes.extend([7, 10, 1, 6]);
    bytes.extend(b"memory");
    bytes.extend([2, 0]);
    let linkage = read_linkage(&bytes).expect("hand-written module parses");
    assert_eq!(
        linkage.imports,
        vec![(
            "spacetime_10.0".to_string(),
            "identity".to_string(),
            KIND_FUNC
        )]
    );
    assert_eq!(linkage.export_kind("memory"), Some(KIND_MEMORY));
    assert!(
        read_linkage(&bytes[..bytes.len() - 1]).is_err(),
        "truncated module must not parse"
    );
}
