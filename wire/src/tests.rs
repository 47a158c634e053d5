//! Tests of the wire format: spec §7 bytes, hand-written golden fixtures per
//! message kind, round-trip proptests and malformed input.

use proptest::prelude::*;
use spacetimedb_lib::{ConnectionId, Identity, TimeDuration, Timestamp};

use super::bsatn::DecodeError;
use super::compression::Compression;
use super::framing::{
    decode_client_payload, decode_server_payload, encode_client_payload, encode_server_payloads,
    Protocol, MAX_INCOMING_PAYLOAD, MAX_V3_BATCH,
};
use super::messages::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn set(id: u32) -> QuerySetId {
    QuerySetId { id }
}

const TS: i64 = 1_700_000_000_000_000;

// ------------------------------------------------------------ spec §7 bytes

fn s7_initial_connection() -> ServerMessage {
    ServerMessage::InitialConnection {
        identity: Identity::from_hex(
            "c200fe02ebe7d75ecbb0a80c12bab105a9c55dd0a80ffd8f3eea46506114bf93",
        )
        .unwrap(),
        connection_id: ConnectionId::from_hex("0123456789abcdef0123456789abcdef").unwrap(),
        token: "TOKEN".into(),
    }
}

fn s7_subscribe_applied() -> ServerMessage {
    ServerMessage::SubscribeApplied {
        request_id: 0,
        query_set_id: set(0),
        rows: QueryRows {
            tables: vec![SingleTableRows {
                table: "t".into(),
                rows: BsatnRowList::empty(),
            }],
        },
    }
}

fn s7_reducer_result() -> ServerMessage {
    let row = hex("07000000 01000000 78");
    ServerMessage::ReducerResult {
        request_id: 1,
        timestamp: Timestamp::from_micros_since_unix_epoch(TS),
        result: ReducerOutcome::Ok(ReducerOk {
            ret_value: vec![],
            transaction_update: TransactionUpdate {
                query_sets: vec![QuerySetUpdate {
                    query_set_id: set(0),
                    tables: vec![TableUpdate {
                        table_name: "t".into(),
                        rows: vec![TableUpdateRows::PersistentTable {
                            inserts: BsatnRowList::from_rows(&[row]),
                            deletes: BsatnRowList::empty(),
                        }],
                    }],
                }],
            },
        }),
    }
}

#[test]
fn spec_section_7_server_payloads() {
    let cases = [
        (
            s7_initial_connection(),
            "00 00 93bf14615046ea3e8ffd0fa8d05dc5a905b1ba120ca8b0cb5ed7e7eb02fe00c2
             efcdab8967452301efcdab8967452301 05000000 544f4b454e",
            59,
        ),
        (
            s7_subscribe_applied(),
            "00 01 00000000 00000000 01000000 01000000 74 01 00000000 00000000",
            28,
        ),
        (
            s7_reducer_result(),
            "00 06 01000000 00401e18240a0600 00 00000000 01000000 00000000 01000000
             01000000 74 01000000 00 00 0900 09000000 070000000100000078
             01 00000000 00000000",
            66,
        ),
    ];
    for (msg, bytes, len) in cases {
        let expected = hex(bytes);
        assert_eq!(expected.len(), len);
        // The TS SDK negotiated v3 + Gzip; all bodies are below the threshold.
        let payloads =
            encode_server_payloads(Protocol::V3, Compression::Gzip, std::slice::from_ref(&msg));
        assert_eq!(payloads, vec![expected.clone()], "{msg:?}");
        assert_eq!(
            decode_server_payload(Protocol::V3, &expected, 1 << 20),
            Ok(vec![msg])
        );
    }
}

#[test]
fn spec_section_7_identity_is_the_derived_one() {
    let ServerMessage::InitialConnection { identity, .. } = s7_initial_connection() else {
        unreachable!()
    };
    assert!(identity.to_hex().to_string().starts_with("c200fe02"));
}

#[test]
fn spec_section_7_client_payloads() {
    let subscribe = ClientMessage::Subscribe {
        request_id: 0,
        query_set_id: set(0),
        query_strings: vec!["SELECT * FROM t".into()],
    };
    let call = ClientMessage::CallReducer {
        request_id: 1,
        reducer: "add".into(),
        args: hex("07000000 01000000 78"),
    };
    let cases = [
        (
            subscribe,
            "00 00000000 00000000 01000000 0f000000 53454c454354202a2046524f4d2074",
            32,
        ),
        (
            call,
            "03 01000000 00 03000000 616464 09000000 070000000100000078",
            26,
        ),
    ];
    for (msg, bytes, len) in cases {
        let expected = hex(bytes);
        assert_eq!(expected.len(), len);
        assert_eq!(msg.encode(), expected);
        for protocol in [Protocol::V2, Protocol::V3] {
            assert_eq!(
                decode_client_payload(protocol, &expected),
                Ok(vec![msg.clone()])
            );
        }
    }
}

#[test]
fn spec_section_7_v3_may_coalesce_initial_connection_and_applied() {
    let msgs = [s7_initial_connection(), s7_subscribe_applied()];
    let payloads = encode_server_payloads(Protocol::V3, Compression::Brotli, &msgs);
    assert_eq!(payloads.len(), 1);
    assert_eq!(payloads[0].len(), 1 + 58 + 27);
    assert_eq!(payloads[0][0], 0);
    assert_eq!(
        decode_server_payload(Protocol::V3, &payloads[0], 1 << 20),
        Ok(msgs.to_vec())
    );
    // v2 sends each message in its own payload.
    let v2 = encode_server_payloads(Protocol::V2, Compression::Brotli, &msgs);
    assert_eq!(v2.len(), 2);
}

// ------------------------------------------------- golden bytes per kind

#[test]
fn golden_client_messages() {
    let cases = [
        (
            ClientMessage::Unsubscribe {
                request_id: 2,
                query_set_id: set(1),
                flags: UnsubscribeFlags::SendDroppedRows,
            },
            "01 02000000 01000000 01",
        ),
        (
            ClientMessage::Unsubscribe {
                request_id: 0x0102_0304,
                query_set_id: set(0),
                flags: UnsubscribeFlags::Default,
            },
            "01 04030201 00000000 00",
        ),
        (
            ClientMessage::OneOffQuery {
                request_id: 3,
                query_string: "SELECT 1".into(),
            },
            "02 03000000 08000000 53454c4543542031",
        ),
        (
            ClientMessage::CallProcedure {
                request_id: 4,
                procedure: "p".into(),
                args: vec![],
            },
            "04 04000000 00 01000000 70 00000000",
        ),
        (
            ClientMessage::Subscribe {
                request_id: 1,
                query_set_id: set(1),
                query_strings: vec![],
            },
            "00 01000000 01000000 00000000",
        ),
    ];
    for (msg, bytes) in cases {
        let expected = hex(bytes);
        assert_eq!(msg.encode(), expected, "{msg:?}");
        assert_eq!(ClientMessage::decode(&expected), Ok(msg));
    }
}

#[test]
fn golden_server_messages() {
    let one_row = QueryRows {
        tables: vec![SingleTableRows {
            table: "t".into(),
            rows: BsatnRowList::from_rows(&[vec![1u8, 2], vec![3]]),
        }],
    };
    // table "t", RowOffsets [0, 2], data 01 02 03
    let one_row_hex = "01000000 01000000 74 01 02000000 0000000000000000 0200000000000000
                       03000000 010203";
    let cases = [
        (
            ServerMessage::UnsubscribeApplied {
                request_id: 5,
                query_set_id: set(1),
                rows: Some(one_row.clone()),
            },
            format!("02 05000000 01000000 00 {one_row_hex}"),
        ),
        (
            ServerMessage::UnsubscribeApplied {
                request_id: 5,
                query_set_id: set(1),
                rows: None,
            },
            "02 05000000 01000000 01".into(),
        ),
        (
            ServerMessage::SubscriptionError {
                request_id: Some(6),
                query_set_id: set(2),
                error: "bad".into(),
            },
            "03 00 06000000 02000000 03000000 626164".into(),
        ),
        (
            ServerMessage::SubscriptionError {
                request_id: None,
                query_set_id: set(2),
                error: "".into(),
            },
            "03 01 02000000 00000000".into(),
        ),
        (
            ServerMessage::TransactionUpdate(TransactionUpdate {
                query_sets: vec![QuerySetUpdate {
                    query_set_id: set(3),
                    tables: vec![TableUpdate {
                        table_name: "e".into(),
                        rows: vec![TableUpdateRows::EventTable {
                            events: BsatnRowList::from_rows(&[[9u8]]),
                        }],
                    }],
                }],
            }),
            "04 01000000 03000000 01000000 01000000 65 01000000 01 00 0100 01000000 09".into(),
        ),
        (
            ServerMessage::OneOffQueryResult {
                request_id: 7,
                result: Ok(QueryRows::default()),
            },
            "05 07000000 00 00000000".into(),
        ),
        (
            ServerMessage::OneOffQueryResult {
                request_id: 7,
                result: Err("no".into()),
            },
            "05 07000000 01 02000000 6e6f".into(),
        ),
        (
            ServerMessage::ReducerResult {
                request_id: 8,
                timestamp: Timestamp::from_micros_since_unix_epoch(TS),
                result: ReducerOutcome::OkEmpty,
            },
            "06 08000000 00401e18240a0600 01".into(),
        ),
        (
            ServerMessage::ReducerResult {
                request_id: 8,
                timestamp: Timestamp::from_micros_since_unix_epoch(-1),
                // BSATN String "x"
                result: ReducerOutcome::Err(hex("01000000 78")),
            },
            "06 08000000 ffffffffffffffff 02 05000000 0100000078".into(),
        ),
        (
            ServerMessage::ReducerResult {
                request_id: 8,
                timestamp: Timestamp::from_micros_since_unix_epoch(TS),
                result: ReducerOutcome::InternalError("no such reducer".into()),
            },
            "06 08000000 00401e18240a0600 03 0f000000 6e6f20737563682072656475636572".into(),
        ),
        (
            ServerMessage::ProcedureResult {
                status: ProcedureStatus::Returned(vec![0xaa]),
                timestamp: Timestamp::from_micros_since_unix_epoch(TS),
                total_host_execution_duration: TimeDuration::from_micros(1000),
                request_id: 9,
            },
            "07 00 01000000 aa 00401e18240a0600 e803000000000000 09000000".into(),
        ),
        (
            ServerMessage::ProcedureResult {
                status: ProcedureStatus::InternalError("e".into()),
                timestamp: Timestamp::from_micros_since_unix_epoch(0),
                total_host_execution_duration: TimeDuration::from_micros(0),
                request_id: 0,
            },
            "07 01 01000000 65 0000000000000000 0000000000000000 00000000".into(),
        ),
    ];
    for (msg, bytes) in cases {
        let expected = hex(&bytes);
        assert_eq!(msg.encode(), expected, "{msg:?}");
        assert_eq!(ServerMessage::decode(&expected), Ok(msg));
    }
}

#[test]
fn row_lists_follow_the_reference_size_hint_rule() {
    assert_eq!(
        BsatnRowList::empty().size_hint,
        RowSizeHint::RowOffsets(vec![])
    );
    assert_eq!(
        BsatnRowList::from_rows(&[[1u8, 2], [3, 4]]).size_hint,
        RowSizeHint::FixedSize(2)
    );
    // Zero-byte rows need offsets, never FixedSize(0).
    let zero = BsatnRowList::from_rows(&[[0u8; 0], [0u8; 0]]);
    assert_eq!(zero.size_hint, RowSizeHint::RowOffsets(vec![0, 0]));
    assert_eq!(zero.rows().unwrap(), vec![&[0u8; 0][..], &[0u8; 0][..]]);
    let mixed = BsatnRowList::from_rows(&[vec![1u8], vec![2, 3], vec![]]);
    assert_eq!(mixed.size_hint, RowSizeHint::RowOffsets(vec![0, 1, 3]));
    assert_eq!(
        mixed.rows().unwrap(),
        vec![&[1u8][..], &[2, 3][..], &[][..]]
    );
    let bad = BsatnRowList {
        size_hint: RowSizeHint::FixedSize(0),
        rows_data: vec![],
    };
    assert!(bad.rows().is_err());
}

// ------------------------------------------------------ malformed input

#[test]
fn unknown_tags_are_errors() {
    assert_eq!(
        ClientMessage::decode(&[5]),
        Err(DecodeError::UnknownTag {
            ty: "ClientMessage",
            tag: 5,
            offset: 0
        })
    );
    assert_eq!(
        ServerMessage::decode(&[8]),
        Err(DecodeError::UnknownTag {
            ty: "ServerMessage",
            tag: 8,
            offset: 0
        })
    );
    assert_eq!(
        ClientMessage::decode(&hex("01 00000000 00000000 02")),
        Err(DecodeError::UnknownTag {
            ty: "UnsubscribeFlags",
            tag: 2,
            offset: 9
        })
    );
    assert_eq!(
        ServerMessage::decode(&hex("02 00000000 00000000 02")),
        Err(DecodeError::UnknownTag {
            ty: "Option<QueryRows>",
            tag: 2,
            offset: 9
        })
    );
}

#[test]
fn non_zero_call_flags_are_errors() {
    assert_eq!(
        ClientMessage::decode(&hex("03 01000000 01 01000000 61 00000000")),
        Err(DecodeError::NonZeroFlags(1))
    );
    assert_eq!(
        ClientMessage::decode(&hex("04 01000000 80 01000000 61 00000000")),
        Err(DecodeError::NonZeroFlags(0x80))
    );
}

#[test]
fn every_strict_prefix_is_truncated_and_every_extension_is_trailing() {
    let msgs = [
        s7_initial_connection(),
        s7_subscribe_applied(),
        s7_reducer_result(),
    ];
    for msg in msgs {
        let bytes = msg.encode();
        for cut in 0..bytes.len() {
            let err = ServerMessage::decode(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(
                    err,
                    DecodeError::Truncated { .. } | DecodeError::LengthTooLarge { .. }
                ),
                "{cut}: {err}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            ServerMessage::decode(&long),
            Err(DecodeError::TrailingBytes {
                ty: "ServerMessage",
                count: 1
            })
        );
    }
}

#[test]
fn oversized_length_prefixes_are_rejected() {
    // Subscribe claiming 2^32-1 query strings in a 17-byte payload.
    let err = ClientMessage::decode(&hex("00 00000000 00000000 ffffffff 00000000")).unwrap_err();
    assert!(
        matches!(err, DecodeError::LengthTooLarge { len: u32::MAX, .. }),
        "{err}"
    );
    // CallReducer whose args claim 1 GiB.
    let err = ClientMessage::decode(&hex("03 00000000 00 01000000 61 00000040 00")).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::LengthTooLarge {
                len: 0x4000_0000,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn v2_and_v3_client_framing() {
    let a = ClientMessage::OneOffQuery {
        request_id: 1,
        query_string: "q".into(),
    };
    let b = ClientMessage::Unsubscribe {
        request_id: 2,
        query_set_id: set(0),
        flags: UnsubscribeFlags::SendDroppedRows,
    };
    let both = encode_client_payload(Protocol::V3, &[a.clone(), b.clone()]);
    assert_eq!(
        decode_client_payload(Protocol::V3, &both),
        Ok(vec![a.clone(), b])
    );
    // v2: exactly one message per payload.
    assert!(matches!(
        decode_client_payload(Protocol::V2, &both),
        Err(DecodeError::TrailingBytes { .. })
    ));
    // v3: trailing garbage after complete messages is an error.
    let mut garbage = encode_client_payload(Protocol::V3, &[a]);
    garbage.push(0x09);
    assert!(matches!(
        decode_client_payload(Protocol::V3, &garbage),
        Err(DecodeError::UnknownTag { tag: 9, .. })
    ));
    for protocol in [Protocol::V2, Protocol::V3] {
        assert_eq!(
            decode_client_payload(protocol, &[]),
            Err(DecodeError::EmptyPayload)
        );
        assert_eq!(
            decode_client_payload(protocol, &vec![0; MAX_INCOMING_PAYLOAD + 1]),
            Err(DecodeError::TooLarge {
                len: MAX_INCOMING_PAYLOAD + 1,
                limit: MAX_INCOMING_PAYLOAD
            })
        );
    }
}

#[test]
fn v3_batches_are_cut_at_512_kib_and_compressed_as_a_whole() {
    let big = |n: usize| ServerMessage::ProcedureResult {
        status: ProcedureStatus::Returned(vec![0x5a; n]),
        timestamp: Timestamp::from_micros_since_unix_epoch(TS),
        total_host_execution_duration: TimeDuration::from_micros(1),
        request_id: n as u32,
    };
    // 3 × ~200 KiB: the first two fit one batch, the third goes next;
    // a single 600 KiB message goes alone.
    let msgs = [
        big(200 * 1024),
        big(200 * 1024),
        big(200 * 1024),
        big(600 * 1024),
        big(10),
    ];
    for compression in [Compression::None, Compression::Gzip, Compression::Brotli] {
        let payloads = encode_server_payloads(Protocol::V3, compression, &msgs);
        let decoded: Vec<Vec<ServerMessage>> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // The last payload holds only the small message: never compressed.
                let tag = if i == 3 { 0 } else { compression.tag() };
                assert_eq!(p[0], tag);
                decode_server_payload(Protocol::V3, p, MAX_V3_BATCH * 2).unwrap()
            })
            .collect();
        assert_eq!(
            decoded.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 1, 1, 1]
        );
        assert_eq!(decoded.concat(), msgs.to_vec());
    }
}

// ---------------------------------------------------------- proptests

fn arb_string() -> impl Strategy<Value = String> {
    ".{0,12}"
}

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24)
}

fn arb_set() -> impl Strategy<Value = QuerySetId> {
    any::<u32>().prop_map(set)
}

fn arb_row_list() -> impl Strategy<Value = BsatnRowList> {
    prop_oneof![
        prop::collection::vec(arb_bytes(), 0..4).prop_map(|rows| BsatnRowList::from_rows(&rows)),
        (
            any::<u16>(),
            arb_bytes(),
            prop::collection::vec(any::<u64>(), 0..4)
        )
            .prop_map(|(n, data, offsets)| BsatnRowList {
                size_hint: if n % 2 == 0 {
                    RowSizeHint::FixedSize(n)
                } else {
                    RowSizeHint::RowOffsets(offsets)
                },
                rows_data: data,
            }),
    ]
}

fn arb_query_rows() -> impl Strategy<Value = QueryRows> {
    prop::collection::vec(
        (arb_string(), arb_row_list()).prop_map(|(table, rows)| SingleTableRows { table, rows }),
        0..3,
    )
    .prop_map(|tables| QueryRows { tables })
}

fn arb_transaction_update() -> impl Strategy<Value = TransactionUpdate> {
    let rows = prop_oneof![
        (arb_row_list(), arb_row_list())
            .prop_map(|(inserts, deletes)| TableUpdateRows::PersistentTable { inserts, deletes }),
        arb_row_list().prop_map(|events| TableUpdateRows::EventTable { events }),
    ];
    let table = (arb_string(), prop::collection::vec(rows, 0..3))
        .prop_map(|(table_name, rows)| TableUpdate { table_name, rows });
    let query_set =
        (arb_set(), prop::collection::vec(table, 0..3)).prop_map(|(query_set_id, tables)| {
            QuerySetUpdate {
                query_set_id,
                tables,
            }
        });
    prop::collection::vec(query_set, 0..3).prop_map(|query_sets| TransactionUpdate { query_sets })
}

fn arb_client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (
            any::<u32>(),
            arb_set(),
            prop::collection::vec(arb_string(), 0..4)
        )
            .prop_map(|(request_id, query_set_id, query_strings)| {
                ClientMessage::Subscribe {
                    request_id,
                    query_set_id,
                    query_strings,
                }
            }),
        (any::<u32>(), arb_set(), any::<bool>()).prop_map(|(request_id, query_set_id, drop)| {
            ClientMessage::Unsubscribe {
                request_id,
                query_set_id,
                flags: if drop {
                    UnsubscribeFlags::SendDroppedRows
                } else {
                    UnsubscribeFlags::Default
                },
            }
        }),
        (any::<u32>(), arb_string()).prop_map(|(request_id, query_string)| {
            ClientMessage::OneOffQuery {
                request_id,
                query_string,
            }
        }),
        (any::<u32>(), arb_string(), arb_bytes()).prop_map(|(request_id, reducer, args)| {
            ClientMessage::CallReducer {
                request_id,
                reducer,
                args,
            }
        }),
        (any::<u32>(), arb_string(), arb_bytes()).prop_map(|(request_id, procedure, args)| {
            ClientMessage::CallProcedure {
                request_id,
                procedure,
                args,
            }
        }),
    ]
}

fn arb_server_message() -> impl Strategy<Value = ServerMessage> {
    let ts = any::<i64>().prop_map(Timestamp::from_micros_since_unix_epoch);
    let outcome = prop_oneof![
        (arb_bytes(), arb_transaction_update()).prop_map(|(ret_value, transaction_update)| {
            ReducerOutcome::Ok(ReducerOk {
                ret_value,
                transaction_update,
            })
        }),
        Just(ReducerOutcome::OkEmpty),
        arb_bytes().prop_map(ReducerOutcome::Err),
        arb_string().prop_map(ReducerOutcome::InternalError),
    ];
    let status = prop_oneof![
        arb_bytes().prop_map(ProcedureStatus::Returned),
        arb_string().prop_map(ProcedureStatus::InternalError),
    ];
    prop_oneof![
        (any::<[u8; 32]>(), any::<u128>(), arb_string()).prop_map(|(id, conn, token)| {
            ServerMessage::InitialConnection {
                identity: Identity::from_byte_array(id),
                connection_id: ConnectionId::from_u128(conn),
                token,
            }
        }),
        (any::<u32>(), arb_set(), arb_query_rows()).prop_map(|(request_id, query_set_id, rows)| {
            ServerMessage::SubscribeApplied {
                request_id,
                query_set_id,
                rows,
            }
        }),
        (any::<u32>(), arb_set(), prop::option::of(arb_query_rows())).prop_map(
            |(request_id, query_set_id, rows)| ServerMessage::UnsubscribeApplied {
                request_id,
                query_set_id,
                rows
            }
        ),
        (prop::option::of(any::<u32>()), arb_set(), arb_string()).prop_map(
            |(request_id, query_set_id, error)| ServerMessage::SubscriptionError {
                request_id,
                query_set_id,
                error
            }
        ),
        arb_transaction_update().prop_map(ServerMessage::TransactionUpdate),
        (
            any::<u32>(),
            prop_oneof![arb_query_rows().prop_map(Ok), arb_string().prop_map(Err)]
        )
            .prop_map(|(request_id, result)| ServerMessage::OneOffQueryResult {
                request_id,
                result
            }),
        (any::<u32>(), ts.clone(), outcome).prop_map(|(request_id, timestamp, result)| {
            ServerMessage::ReducerResult {
                request_id,
                timestamp,
                result,
            }
        }),
        (status, ts, any::<i64>(), any::<u32>()).prop_map(
            |(status, timestamp, micros, request_id)| ServerMessage::ProcedureResult {
                status,
                timestamp,
                total_host_execution_duration: TimeDuration::from_micros(micros),
                request_id,
            }
        ),
    ]
}

fn arb_compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Brotli),
        Just(Compression::Gzip)
    ]
}

proptest! {
    #[test]
    fn client_messages_round_trip(msg in arb_client_message()) {
        let bytes = msg.encode();
        prop_assert_eq!(ClientMessage::decode(&bytes), Ok(msg.clone()));
        prop_assert_eq!(decode_client_payload(Protocol::V2, &bytes), Ok(vec![msg]));
    }

    #[test]
    fn server_messages_round_trip(msg in arb_server_message()) {
        let bytes = msg.encode();
        prop_assert_eq!(ServerMessage::decode(&bytes), Ok(msg.clone()));
        // Canonical: re-encoding the decoded value gives the same bytes.
        prop_assert_eq!(ServerMessage::decode(&bytes).unwrap().encode(), bytes);
    }

    #[test]
    fn v3_payloads_round_trip(
        server in prop::collection::vec(arb_server_message(), 1..6),
        client in prop::collection::vec(arb_client_message(), 1..6),
        compression in arb_compression(),
    ) {
        let payloads = encode_server_payloads(Protocol::V3, compression, &server);
        prop_assert_eq!(payloads.len(), 1);
        prop_assert_eq!(
            decode_server_payload(Protocol::V3, &payloads[0], 1 << 20),
            Ok(server.clone())
        );
        let v2 = encode_server_payloads(Protocol::V2, compression, &server);
        prop_assert_eq!(v2.len(), server.len());
        for (payload, msg) in v2.iter().zip(&server) {
            prop_assert_eq!(
                decode_server_payload(Protocol::V2, payload, 1 << 20),
                Ok(vec![msg.clone()])
            );
        }
        let payload = encode_client_payload(Protocol::V3, &client);
        prop_assert_eq!(decode_client_payload(Protocol::V3, &payload), Ok(client));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = ClientMessage::decode(&bytes);
        let _ = ServerMessage::decode(&bytes);
        let _ = decode_client_payload(Protocol::V3, &bytes);
        let _ = decode_server_payload(Protocol::V3, &bytes, 1 << 16);
    }

    #[test]
    fn mutated_messages_never_panic(msg in arb_server_message(), at in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = msg.encode();
        let i = at % bytes.len();
        bytes[i] = byte;
        let _ = ServerMessage::decode(&bytes);
    }
}

// Protects the grouping the WebSocket session uses for queued messages:
// v2 one payload per message; v3 runs cut before the batch limit would be
// passed, an oversized message alone, every message in order exactly once.
#[test]
fn payload_runs_group_queued_messages() {
    use super::framing::{payload_runs, MAX_V3_BATCH};
    assert_eq!(
        payload_runs(Protocol::V2, &[5, 6, 7]),
        vec![0..1, 1..2, 2..3]
    );
    assert_eq!(payload_runs(Protocol::V3, &[5, 6, 7]), vec![0..3]);
    let half = MAX_V3_BATCH / 2;
    assert_eq!(
        payload_runs(Protocol::V3, &[half, half, 1, MAX_V3_BATCH + 1, 2]),
        vec![0..2, 2..3, 3..4, 4..5]
    );
    assert!(payload_runs(Protocol::V3, &[]).is_empty());
}
