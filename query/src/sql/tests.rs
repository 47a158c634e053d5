use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use spacetimedb_lib::Identity;
use spacetimedb_sats::{
    u256, AlgebraicType, AlgebraicValue, ProductType, ProductTypeElement, ProductValue,
};
use storage::{ColId, Database, DbOptions, IndexAlgorithm, IndexDef, TableDef, TableSchema};

use super::literal::{rfc3339_micros, to_value};
use super::*;

fn cols(c: &[(&'static str, AlgebraicType)]) -> ProductType {
    ProductType::new(
        c.iter()
            .map(|(n, t)| ProductTypeElement::new_named(t.clone(), *n))
            .collect(),
    )
}

fn def(name: &str, c: &[(&'static str, AlgebraicType)], indexed: &[u16], public: bool) -> TableDef {
    TableDef {
        name: name.into(),
        columns: cols(c),
        primary_key: None,
        indexes: indexed
            .iter()
            .map(|&i| IndexDef {
                name: format!("{name}_{i}_idx"),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(i)],
            })
            .collect(),
        unique_constraints: vec![],
        sequences: vec![],
        public,
        is_event: false,
    }
}

fn sender() -> Identity {
    Identity::from_byte_array([7; 32])
}

/// person(id u32 idx, name string, age u8, owner Identity, big u128),
/// pet(owner_id u32 idx, species string, weight f64), secret(x u32) private,
/// plain(k u32, v u32) without indexes.
fn db() -> Database {
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().unwrap();
    let person = tx
        .create_table(def(
            "person",
            &[
                ("id", AlgebraicType::U32),
                ("name", AlgebraicType::String),
                ("age", AlgebraicType::U8),
                ("owner", AlgebraicType::identity()),
                ("big", AlgebraicType::U128),
            ],
            &[0],
            true,
        ))
        .unwrap();
    let pet = tx
        .create_table(def(
            "pet",
            &[
                ("owner_id", AlgebraicType::U32),
                ("species", AlgebraicType::String),
                ("weight", AlgebraicType::F64),
            ],
            &[0],
            true,
        ))
        .unwrap();
    let secret = tx
        .create_table(def("secret", &[("x", AlgebraicType::U32)], &[], false))
        .unwrap();
    tx.create_table(def(
        "plain",
        &[("k", AlgebraicType::U32), ("v", AlgebraicType::U32)],
        &[],
        true,
    ))
    .unwrap();
    let id = |i: Identity| {
        AlgebraicValue::product([AlgebraicValue::U256(Box::new(u256::from_le_bytes(
            i.to_byte_array(),
        )))])
    };
    for (i, name, age, owner) in [
        (1u32, "Ann", 30u8, sender()),
        (2, "Bob", 40, Identity::ZERO),
        (3, "O'Neil", 50, Identity::ZERO),
    ] {
        tx.insert(
            person,
            ProductValue::from(vec![
                AlgebraicValue::U32(i),
                AlgebraicValue::String(name.into()),
                AlgebraicValue::U8(age),
                id(owner),
                AlgebraicValue::U128((u128::MAX - i as u128).into()),
            ]),
        )
        .unwrap();
    }
    for (owner, species, weight) in [(1u32, "cat", 4.5f64), (1, "dog", 20.0), (2, "fish", 0.1)] {
        tx.insert(
            pet,
            ProductValue::from(vec![
                AlgebraicValue::U32(owner),
                AlgebraicValue::String(species.into()),
                AlgebraicValue::F64(weight.into()),
            ]),
        )
        .unwrap();
    }
    tx.insert(secret, ProductValue::from(vec![AlgebraicValue::U32(1)]))
        .unwrap();
    tx.commit().unwrap();
    db
}

fn query(db: &Database, sql: &str) -> Result<QueryResult, SqlError> {
    run_query(&db.read().unwrap(), sql, false, sender()).map_err(SqlError::from)
}

fn count(db: &Database, sql: &str) -> usize {
    query(db, sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows
        .len()
}

fn err(db: &Database, sql: &str) -> String {
    match query(db, sql) {
        Ok(r) => panic!("{sql} succeeded with {} rows", r.rows.len()),
        Err(e) => e.0,
    }
}

fn sub_err(db: &Database, sql: &str) -> String {
    let state = db.read().unwrap();
    let statement = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    match check(&statement, &*state, Mode::Subscription, false, sender()) {
        Ok(_) => panic!("{sql} accepted as a subscription"),
        Err(e) => e.0,
    }
}

fn sub_ok(db: &Database, sql: &str) {
    let state = db.read().unwrap();
    let statement = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    check(&statement, &*state, Mode::Subscription, false, sender())
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[test]
fn selects_filters_and_projections() {
    let db = db();
    assert_eq!(count(&db, "SELECT * FROM person"), 3);
    assert_eq!(count(&db, "select * from person where id = 2"), 1);
    assert_eq!(count(&db, "SELECT * FROM person WHERE 2 < id"), 1);
    assert_eq!(
        count(
            &db,
            "SELECT * FROM person WHERE age >= 40 AND (name = 'Bob' OR id = 1)"
        ),
        1
    );
    assert_eq!(count(&db, "SELECT * FROM person WHERE name = 'O''Neil'"), 1);
    assert_eq!(count(&db, "SELECT * FROM person WHERE TRUE"), 3);
    assert_eq!(count(&db, "SELECT * FROM person WHERE id != 1"), 2);
    assert_eq!(count(&db, "SELECT * FROM person WHERE FALSE"), 0);
    assert_eq!(count(&db, "SELECT * FROM person WHERE owner = :sender"), 1);
    assert_eq!(
        count(
            &db,
            "SELECT * FROM person WHERE big = 340282366920938463463374607431768211454"
        ),
        1
    );
    assert_eq!(count(&db, "SELECT * FROM person WHERE age = 3e1"), 1);
    assert_eq!(count(&db, "SELECT * FROM person LIMIT 2"), 2);
    assert_eq!(
        count(&db, "SELECT * FROM \"person\" AS p WHERE p.id <> 1"),
        2
    );

    let r = query(&db, "SELECT p.name AS who, age FROM person p WHERE id = 1").unwrap();
    assert_eq!(r.schema.elements.len(), 2);
    assert!(r.schema.elements[0].has_name("who"));
    assert!(r.schema.elements[1].has_name("age"));
    assert_eq!(r.schema.elements[1].algebraic_type, AlgebraicType::U8);
    assert_eq!(
        r.rows,
        vec![ProductValue::from(vec![
            AlgebraicValue::String("Ann".into()),
            AlgebraicValue::U8(30)
        ])]
    );

    let r = query(&db, "SELECT COUNT(*) AS n FROM person WHERE age > 35").unwrap();
    assert!(r.schema.elements[0].has_name("n"));
    assert_eq!(
        r.rows,
        vec![ProductValue::from(vec![AlgebraicValue::U64(2)])]
    );
    let r = query(&db, "SELECT count(*) AS n FROM person WHERE FALSE").unwrap();
    assert_eq!(
        r.rows,
        vec![ProductValue::from(vec![AlgebraicValue::U64(0)])]
    );
}

#[test]
fn joins_use_bag_semantics() {
    let db = db();
    // Ann has two pets: her row comes back twice.
    let r = query(
        &db,
        "SELECT p.* FROM person p JOIN pet ON p.id = pet.owner_id",
    )
    .unwrap();
    assert_eq!(r.rows.len(), 3);
    assert_eq!(r.schema.elements.len(), 5);
    assert_eq!(
        count(
            &db,
            "SELECT pet.* FROM pet JOIN person p ON pet.owner_id = p.id WHERE p.name = 'Ann'"
        ),
        2
    );
    assert_eq!(
        count(
            &db,
            "SELECT pet.* FROM pet JOIN person p ON p.id = pet.owner_id WHERE pet.weight > 1.5"
        ),
        2
    );
    let r = query(&db, "SELECT p.name, pet.species FROM person p JOIN pet ON p.id = pet.owner_id WHERE pet.species = 'fish'").unwrap();
    assert_eq!(
        r.rows,
        vec![ProductValue::from(vec![
            AlgebraicValue::String("Bob".into()),
            AlgebraicValue::String("fish".into())
        ])]
    );
    // Unindexed join side and a three-way join are fine in /sql.
    assert_eq!(
        count(
            &db,
            "SELECT * FROM pet JOIN plain ON pet.owner_id = plain.k"
        ),
        0
    );
    assert_eq!(
        count(&db, "SELECT a.* FROM pet a JOIN person p ON a.owner_id = p.id JOIN pet b ON b.owner_id = p.id"),
        5
    );
}

#[test]
fn private_tables_are_invisible_to_non_owners() {
    let db = db();
    assert_eq!(err(&db, "SELECT * FROM secret"), "no such table `secret`");
    let state = db.read().unwrap();
    assert_eq!(
        run_query(&state, "SELECT * FROM secret", true, sender())
            .unwrap()
            .rows
            .len(),
        1
    );
}

#[test]
fn precise_errors() {
    let db = db();
    for (sql, want) in [
        ("SELECT * FROM nobody", "no such table `nobody`"),
        ("SELECT * FROM Person", "no such table `Person`"),
        ("SELECT * FROM person WHERE x = 1", "no such column `x` in table `person`"),
        ("SELECT * FROM person WHERE id = 'a'", "cannot compare u32 with string"),
        ("SELECT * FROM person WHERE id = name", "cannot compare u32 with string"),
        ("SELECT * FROM person WHERE id = -1", "`-1` is out of range for u32"),
        ("SELECT * FROM person WHERE age = 256", "`256` is out of range for u8"),
        ("SELECT * FROM person WHERE id = 0.5", "`0.5` is not an integer"),
        ("SELECT * FROM person WHERE id = 1e400", "`1e400` is out of range"),
        ("SELECT * FROM person WHERE age = :sender", "`:sender` can only be compared with Identity or bytes columns, not u8"),
        ("SELECT * FROM person WHERE 1 = 1", "a comparison needs at least one column (comparing two literals is not supported)"),
        ("SELECT * FROM person WHERE NOT id = 1", "unsupported SQL: NOT"),
        ("SELECT * FROM person WHERE id = NULL", "unsupported SQL: NULL"),
        ("SELECT * FROM person WHERE id IS NULL", "unsupported SQL: IS [NOT] NULL"),
        ("SELECT * FROM person WHERE id IN (1, 2)", "unsupported SQL: IN"),
        ("SELECT * FROM person WHERE name LIKE 'a%'", "unsupported SQL: LIKE"),
        ("SELECT * FROM person WHERE id = :other", "unsupported SQL: parameter `:other` (only :sender)"),
        ("SELECT * FROM person ORDER BY id", "unsupported SQL: ORDER BY"),
        ("SELECT DISTINCT * FROM person", "unsupported SQL: DISTINCT"),
        ("SELECT * FROM person, pet", "unsupported SQL: comma joins or a SELECT without exactly one FROM table (use JOIN … ON)"),
        ("SELECT * FROM person LEFT JOIN pet ON person.id = pet.owner_id", "unsupported SQL: Left joins (only inner JOIN … ON)"),
        ("SELECT COUNT(*) FROM person", "COUNT(*) needs an alias: COUNT(*) AS name"),
        ("SELECT *, id FROM person", "unsupported SQL: mixing `*` with other projections"),
        ("SELECT * FROM person p JOIN person p ON p.id = p.id", "duplicate table name or alias `p` (give each table its own alias)"),
        ("SELECT * FROM person JOIN pet ON id = owner_id WHERE age = 1 AND weight = 'x'", "cannot compare f64 with string"),
        ("SELECT * FROM person LIMIT -1", "LIMIT must be an integer literal, not `-1`"),
        ("SELECT * FROM person; SELECT * FROM pet", "expected exactly one SQL statement"),
        ("   ", "empty SQL"),
        ("DROP TABLE person", "unsupported SQL: `DROP TABLE` statements"),
    ] {
        assert_eq!(err(&db, sql), want, "{sql}");
    }
    assert!(err(&db, "SELECT * FRM person").starts_with("SQL syntax error"));
}

#[test]
fn hostile_input_is_an_error_not_a_crash() {
    let db = db();
    let deep = format!(
        "SELECT * FROM person WHERE {}id = 1{}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    assert!(query(&db, &deep).is_err());
    let chain = format!(
        "SELECT * FROM person WHERE {}",
        vec!["id = 1"; 2000].join(" AND ")
    );
    assert!(query(&db, &chain).is_err());
    let long = format!("SELECT * FROM person WHERE big = {}", "9".repeat(60_000));
    assert!(err(&db, &long).contains("limit is 50000"));
    let huge = format!("SELECT * FROM person WHERE big = {}", "9".repeat(500));
    assert_eq!(
        err(&db, &huge),
        format!("`{}` is out of range", "9".repeat(500))
    );
    assert!(query(&db, "SELECT * FROM person WHERE id = 1e-9999999999999").is_err());
}

#[test]
fn subscription_grammar() {
    let db = db();
    sub_ok(&db, "SELECT * FROM person");
    sub_ok(&db, "SELECT * FROM person WHERE person.id = 1");
    sub_ok(&db, "SELECT \"pet\".* FROM \"person\" JOIN \"pet\" ON \"person\".\"id\" = \"pet\".\"owner_id\" WHERE \"person\".\"owner\" = :sender");
    sub_ok(
        &db,
        "SELECT p.* FROM person p INNER JOIN pet q ON p.id = q.owner_id",
    );
    for (sql, want) in [
        ("SELECT * FROM person LIMIT 1", "subscriptions do not support LIMIT"),
        ("SELECT id FROM person", "subscriptions must return entire rows of a single table (SELECT * or SELECT t.*)"),
        ("SELECT COUNT(*) AS n FROM person", "subscriptions must return entire rows of a single table (SELECT * or SELECT t.*)"),
        ("SELECT * FROM person JOIN pet ON person.id = pet.owner_id", "with a join, say which table's rows to return: SELECT t.* …"),
        ("SELECT person.* FROM person JOIN pet ON id = pet.owner_id", "column `id` must be qualified with its table in a join"),
        ("SELECT pet.* FROM pet JOIN plain ON pet.owner_id = plain.k", "Subscriptions require indexes on join columns"),
        ("SELECT a.* FROM pet a JOIN person p ON a.owner_id = p.id JOIN pet b ON b.owner_id = p.id", "subscriptions may join at most two tables"),
        ("DELETE FROM person", "subscriptions accept only SELECT queries"),
    ] {
        assert_eq!(sub_err(&db, sql), want, "{sql}");
    }
}

#[test]
fn dml_parses_and_checks() {
    let db = db();
    let state = db.read().unwrap();
    let bind = |sql: &str| {
        let statement = parse(sql).unwrap();
        assert!(statement.requires_owner());
        check(&statement, &*state, Mode::Sql, true, sender())
    };
    match bind("INSERT INTO plain (v, k) VALUES (1, 2), (+3, 4)").unwrap() {
        BoundStatement::Insert(i) => assert_eq!(
            i.rows,
            vec![
                ProductValue::from(vec![AlgebraicValue::U32(2), AlgebraicValue::U32(1)]),
                ProductValue::from(vec![AlgebraicValue::U32(4), AlgebraicValue::U32(3)]),
            ]
        ),
        other => panic!("{other:?}"),
    }
    match bind("UPDATE plain SET v = 9 WHERE plain.k = 1").unwrap() {
        BoundStatement::Update(u) => assert_eq!(u.assignments, vec![(1, AlgebraicValue::U32(9))]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        bind("DELETE FROM plain WHERE k > 3").unwrap(),
        BoundStatement::Delete(_)
    ));
    assert_eq!(
        bind("INSERT INTO plain (k) VALUES (1)").unwrap_err().0,
        "INSERT must give a value for every column; `v` is missing"
    );
    assert_eq!(
        bind("INSERT INTO plain VALUES (1)").unwrap_err().0,
        "INSERT row has 1 values for 2 columns"
    );
    assert_eq!(
        bind("UPDATE plain SET v = 'x'").unwrap_err().0,
        "column `v`: cannot compare u32 with string"
    );
    assert_eq!(
        bind("UPDATE plain SET nope = 1").unwrap_err().0,
        "no such column `nope` in table `plain`"
    );
    assert!(!parse("SELECT * FROM plain").unwrap().requires_owner());
    assert_eq!(
        SqlError::from(run_query(&state, "DELETE FROM plain", true, sender()).unwrap_err()).0,
        "INSERT, UPDATE and DELETE need a write transaction; run_query runs SELECT only"
    );
}

/// A catalogue without storage.
struct Fake(HashMap<String, Arc<TableSchema>>);

impl Catalog for Fake {
    fn table_schema(&self, name: &str) -> Option<Arc<TableSchema>> {
        self.0.get(name).cloned()
    }
}

#[test]
fn checks_against_a_catalogue_without_storage() {
    let db = db();
    let state = db.read().unwrap();
    let schema = state
        .schema(state.table_id_from_name("pet").unwrap())
        .unwrap()
        .clone();
    let fake = Fake(HashMap::from([("animals".to_string(), schema)]));
    let statement = parse("SELECT * FROM animals WHERE weight < 2").unwrap();
    let BoundStatement::Select(s) = check(&statement, &fake, Mode::Sql, false, sender()).unwrap()
    else {
        panic!("not a select");
    };
    assert_eq!(
        s.filter,
        Some(BoundExpr::Cmp(
            BoundOperand::Column(ColPos { table: 0, col: 2 }),
            CmpOp::Lt,
            BoundOperand::Value(AlgebraicValue::F64(2.0.into()))
        ))
    );
}

#[test]
fn literals_per_spec() {
    let lit = |sql: &str| match parse(&format!("SELECT * FROM t WHERE c = {sql}")).unwrap() {
        Statement::Select(Select {
            filter: Some(Expr::Cmp(_, _, Operand::Literal(l))),
            ..
        }) => l,
        other => panic!("{other:?}"),
    };
    let v = |sql: &str, ty: AlgebraicType| to_value(&lit(sql), &ty);
    assert_eq!(v("1e3", AlgebraicType::U32), Ok(AlgebraicValue::U32(1000)));
    assert_eq!(v("-12", AlgebraicType::I8), Ok(AlgebraicValue::I8(-12)));
    assert_eq!(v("+7", AlgebraicType::U64), Ok(AlgebraicValue::U64(7)));
    assert_eq!(v("1.50e1", AlgebraicType::I16), Ok(AlgebraicValue::I16(15)));
    assert!(v("0.1", AlgebraicType::U32).is_err());
    assert!(v("-1", AlgebraicType::U8).is_err());
    assert_eq!(
        v("0.1", AlgebraicType::F64),
        Ok(AlgebraicValue::F64(0.1.into()))
    );
    assert_eq!(
        v("2", AlgebraicType::F32),
        Ok(AlgebraicValue::F32(2.0.into()))
    );
    assert_eq!(
        v(
            "-57896044618658097711785492504343953926634992332820282019728792003956564819968",
            AlgebraicType::I256
        )
        .unwrap(),
        AlgebraicValue::I256(Box::new(spacetimedb_sats::i256::MIN))
    );
    assert!(v(
        "115792089237316195423570985008687907853269984665640564039457584007913129639936",
        AlgebraicType::U256
    )
    .is_err());
    // String columns take any literal as text.
    assert_eq!(
        v("42", AlgebraicType::String),
        Ok(AlgebraicValue::String("42".into()))
    );
    assert_eq!(
        v("'it''s'", AlgebraicType::String),
        Ok(AlgebraicValue::String("it's".into()))
    );
    assert_eq!(
        v("TRUE", AlgebraicType::Bool),
        Ok(AlgebraicValue::Bool(true))
    );
    assert!(v("1", AlgebraicType::Bool).is_err());
    assert_eq!(
        v("X'0aff'", AlgebraicType::bytes()),
        Ok(AlgebraicValue::Bytes(vec![10, 255].into()))
    );
    assert_eq!(
        v("0x0aff", AlgebraicType::bytes()),
        Ok(AlgebraicValue::Bytes(vec![10, 255].into()))
    );
    let hex64 = format!("c200{}01", "0".repeat(58));
    let want = AlgebraicValue::product([AlgebraicValue::U256(Box::new(
        u256::from_str_radix(&hex64, 16).unwrap(),
    ))]);
    assert_eq!(
        v(&format!("0x{hex64}"), AlgebraicType::identity()),
        Ok(want.clone())
    );
    assert_eq!(
        v(&format!("'{hex64}'"), AlgebraicType::identity()),
        Ok(want)
    );
    assert!(v("0x12", AlgebraicType::identity()).is_err());
    assert_eq!(
        v(
            &format!("0x{}", "0".repeat(31) + "5"),
            AlgebraicType::connection_id()
        ),
        Ok(AlgebraicValue::product([AlgebraicValue::U128(
            5u128.into()
        )]))
    );
    assert_eq!(
        v("'2023-11-14T22:13:20Z'", AlgebraicType::timestamp()),
        Ok(AlgebraicValue::product([AlgebraicValue::I64(
            1_700_000_000_000_000
        )]))
    );
    assert_eq!(
        rfc3339_micros("1970-01-01T00:00:00.5+01:00"),
        Some(-3_599_500_000)
    );
    assert_eq!(rfc3339_micros("1969-12-31T23:59:59Z"), Some(-1_000_000));
    assert_eq!(
        rfc3339_micros("2024-02-29T12:00:00.123456Z"),
        Some(1_709_208_000_123_456)
    );
    assert!(v("'yesterday'", AlgebraicType::timestamp()).is_err());
    assert!(v("1", AlgebraicType::array(AlgebraicType::U32)).is_err());
}

// --- The evaluator against a naive reference -------------------------------

/// A random predicate over t(a u32, b i64) and u(c u32, d i64); columns
/// 0..4 are t.a, t.b, u.c, u.d.
#[derive(Debug, Clone)]
enum P {
    Lit(usize, CmpOp, i64, bool),
    Cols(CmpOp),
    And(Box<P>, Box<P>),
    Or(Box<P>, Box<P>),
    Const(bool),
}

const OPS: [CmpOp; 6] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
];
const NAMES: [&str; 4] = ["t.a", "t.b", "u.c", "u.d"];

fn op_text(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "<>",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    }
}

fn mirror(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        o => o,
    }
}

fn predicate(columns: usize) -> impl Strategy<Value = P> {
    let leaf = prop_oneof![
        (
            0..columns,
            prop::sample::select(OPS.to_vec()),
            any::<bool>()
        )
            .prop_flat_map(|(col, op, flipped)| {
                let range = if col % 2 == 0 { 0i64..5 } else { -3i64..3 };
                range.prop_map(move |lit| P::Lit(col, op, lit, flipped))
            }),
        prop::sample::select(OPS.to_vec()).prop_map(P::Cols),
        any::<bool>().prop_map(P::Const),
    ];
    leaf.prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| P::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| P::Or(Box::new(a), Box::new(b))),
        ]
    })
    .prop_map(move |p| if columns == 2 { strip_cols(p) } else { p })
}

/// Single-table queries cannot compare t with u.
fn strip_cols(p: P) -> P {
    match p {
        P::Cols(op) => P::Lit(0, op, 2, false),
        P::And(a, b) => P::And(Box::new(strip_cols(*a)), Box::new(strip_cols(*b))),
        P::Or(a, b) => P::Or(Box::new(strip_cols(*a)), Box::new(strip_cols(*b))),
        other => other,
    }
}

fn render(p: &P) -> String {
    match p {
        P::Lit(col, op, lit, false) => format!("{} {} {lit}", NAMES[*col], op_text(*op)),
        P::Lit(col, op, lit, true) => format!("{lit} {} {}", op_text(mirror(*op)), NAMES[*col]),
        P::Cols(op) => format!("t.b {} u.d", op_text(*op)),
        P::And(a, b) => format!("({}) AND ({})", render(a), render(b)),
        P::Or(a, b) => format!("({} OR {})", render(a), render(b)),
        P::Const(b) => {
            if *b {
                "TRUE".into()
            } else {
                "FALSE".into()
            }
        }
    }
}

fn cmp(op: CmpOp, x: i64, y: i64) -> bool {
    match op {
        CmpOp::Eq => x == y,
        CmpOp::Ne => x != y,
        CmpOp::Lt => x < y,
        CmpOp::Le => x <= y,
        CmpOp::Gt => x > y,
        CmpOp::Ge => x >= y,
    }
}

fn reference(p: &P, vals: [i64; 4]) -> bool {
    match p {
        P::Lit(col, op, lit, _) => cmp(*op, vals[*col], *lit),
        P::Cols(op) => cmp(*op, vals[1], vals[3]),
        P::And(a, b) => reference(a, vals) && reference(b, vals),
        P::Or(a, b) => reference(a, vals) || reference(b, vals),
        P::Const(b) => *b,
    }
}

fn rows() -> impl Strategy<Value = std::collections::BTreeSet<(u32, i64)>> {
    prop::collection::btree_set((0u32..5, -3i64..3), 0..10)
}

fn tu_db(
    t: &std::collections::BTreeSet<(u32, i64)>,
    u: &std::collections::BTreeSet<(u32, i64)>,
    u_indexed: bool,
) -> Database {
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().unwrap();
    let tid = tx
        .create_table(def(
            "t",
            &[("a", AlgebraicType::U32), ("b", AlgebraicType::I64)],
            &[0],
            true,
        ))
        .unwrap();
    let uid = tx
        .create_table(def(
            "u",
            &[("c", AlgebraicType::U32), ("d", AlgebraicType::I64)],
            if u_indexed { &[0] } else { &[] },
            true,
        ))
        .unwrap();
    for (id, rows) in [(tid, t), (uid, u)] {
        for &(x, y) in rows {
            tx.insert(
                id,
                ProductValue::from(vec![AlgebraicValue::U32(x), AlgebraicValue::I64(y)]),
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
    db
}

fn pairs(result: QueryResult) -> Vec<(u32, i64)> {
    let mut out: Vec<(u32, i64)> = result
        .rows
        .into_iter()
        .map(|r| match &r.elements[..] {
            [AlgebraicValue::U32(x), AlgebraicValue::I64(y)] => (*x, *y),
            other => panic!("{other:?}"),
        })
        .collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn single_table_matches_reference(t in rows(), p in predicate(2), limit in prop::option::of(0u64..4)) {
        let db = tu_db(&t, &Default::default(), true);
        let mut sql = format!("SELECT * FROM t WHERE {}", render(&p));
        if let Some(l) = limit {
            sql += &format!(" LIMIT {l}");
        }
        let got = pairs(query(&db, &sql).unwrap());
        let mut want: Vec<(u32, i64)> = t
            .iter()
            .copied()
            .filter(|&(a, b)| reference(&p, [a.into(), b, 0, 0]))
            .collect();
        want.sort();
        match limit {
            None => prop_assert_eq!(&got, &want),
            Some(l) => {
                prop_assert_eq!(got.len(), want.len().min(l as usize));
                prop_assert!(got.iter().all(|r| want.contains(r)));
            }
        }
        let n = query(&db, &format!("SELECT COUNT(*) AS n FROM t WHERE {}", render(&p))).unwrap();
        prop_assert_eq!(n.rows, vec![ProductValue::from(vec![AlgebraicValue::U64(want.len() as u64)])]);
    }

    #[test]
    fn join_matches_reference(t in rows(), u in rows(), p in predicate(4), u_indexed in any::<bool>(), returns_u in any::<bool>()) {
        let db = tu_db(&t, &u, u_indexed);
        let side = if returns_u { "u" } else { "t" };
        let sql = format!("SELECT {side}.* FROM t JOIN u ON t.a = u.c WHERE {}", render(&p));
        let got = pairs(query(&db, &sql).unwrap());
        let mut want = Vec::new();
        for &(a, b) in &t {
            for &(c, d) in &u {
                if a == c && reference(&p, [a.into(), b, c.into(), d]) {
                    want.push(if returns_u { (c, d) } else { (a, b) });
                }
            }
        }
        want.sort();
        prop_assert_eq!(got, want);
    }
}

// Row-level security: filters are checked at publish, and a non-owner's
// query becomes fragments whose bag union is what the caller may see.

fn rules(db: &Database, filters: &[&str]) -> Result<rls::Rules, String> {
    let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
    rls::Rules::compile(&filters, &*db.read().unwrap())
}

/// Every row of every fragment of `sql` (non-owner `sender()`), as names or
/// species, sorted.
fn secured(db: &Database, rules: &rls::Rules, sql: &str) -> Vec<String> {
    let Statement::Select(select) = parse(sql).unwrap() else {
        panic!("not a select");
    };
    let state = db.read().unwrap();
    let mut out = Vec::new();
    for fragment in rules.expand(&select).unwrap() {
        let fragment = Statement::Select(fragment);
        let BoundStatement::Select(bound) =
            check(&fragment, &*state, Mode::Subscription, false, sender())
                .unwrap_or_else(|e| panic!("{fragment:?}: {e}"))
        else {
            panic!("a select");
        };
        let mut budget = Budget::new(QueryLimits::NON_OWNER);
        for row in eval_select(&state, &bound, &mut budget).unwrap().rows {
            match &row.elements[1] {
                AlgebraicValue::String(s) => out.push(s.to_string()),
                other => panic!("{other:?}"),
            }
        }
    }
    out.sort();
    out
}

#[test]
fn row_level_security_filters_are_checked_when_published() {
    let db = db();
    let e = rules(&db, &["SELECT * FROM secret"]).unwrap_err();
    assert!(e.contains("private"), "{e}");
    let e = rules(&db, &["SELECT name FROM person"]).unwrap_err();
    assert!(e.contains("entire rows"), "{e}");
    let e = rules(&db, &["SELECT * FROM nowhere"]).unwrap_err();
    assert!(e.contains("nowhere"), "{e}");
    let e = rules(&db, &["DELETE FROM person"]).unwrap_err();
    assert!(e.contains("SELECT"), "{e}");
    let e = rules(
        &db,
        &[
            "SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id",
            "SELECT person.* FROM person JOIN pet ON person.id = pet.owner_id",
        ],
    )
    .unwrap_err();
    assert!(e.contains("cycle"), "{e}");
    assert!(rules(&db, &[]).unwrap().is_empty());
}

#[test]
fn row_level_security_unions_filters_per_caller() {
    let db = db();
    let r = rules(
        &db,
        &[
            "SELECT * FROM person WHERE owner = :sender",
            "SELECT * FROM person WHERE age > 45",
        ],
    )
    .unwrap();
    // Ann is the caller's; O'Neil is over 45; Bob is neither.
    assert_eq!(secured(&db, &r, "SELECT * FROM person"), ["Ann", "O'Neil"]);
    assert_eq!(
        secured(&db, &r, "SELECT * FROM person p WHERE p.name = 'Bob'"),
        Vec::<String>::new()
    );
    assert_eq!(
        secured(&db, &r, "SELECT * FROM person WHERE age < 60"),
        ["Ann", "O'Neil"]
    );
    // A row two filters admit is there twice (bag union).
    let both = rules(
        &db,
        &[
            "SELECT * FROM person WHERE owner = :sender",
            "SELECT * FROM person WHERE age < 35",
        ],
    )
    .unwrap();
    assert_eq!(secured(&db, &both, "SELECT * FROM person"), ["Ann", "Ann"]);
    // Unfiltered tables are untouched.
    assert_eq!(secured(&db, &r, "SELECT * FROM pet").len(), 3);
    // A join query over a filtered table keeps its join.
    assert_eq!(
        secured(
            &db,
            &r,
            "SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id"
        ),
        ["cat", "dog"]
    );
}

#[test]
fn row_level_security_join_filters_apply_recursively() {
    let db = db();
    let r = rules(
        &db,
        &[
            "SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id WHERE person.age < 35",
            "SELECT * FROM person WHERE owner = :sender",
        ],
    )
    .unwrap();
    // Pets of under-35s, the lookup side itself limited to the caller's
    // people: Ann's cat and dog.
    assert_eq!(secured(&db, &r, "SELECT * FROM pet"), ["cat", "dog"]);
    assert_eq!(
        secured(&db, &r, "SELECT * FROM pet WHERE species = 'cat'"),
        ["cat"]
    );
    // A join query cannot take a join filter on top.
    let Statement::Select(join) =
        parse("SELECT person.* FROM person JOIN pet ON person.id = pet.owner_id").unwrap()
    else {
        panic!()
    };
    let e = r.expand(&join).unwrap_err();
    assert!(e.0.contains("join"), "{e}");
}

// Protects keyword-named tables: `user` is a keyword of the parser (a
// function without parentheses), yet `user.col` must be a column of table
// `user`, as the stock clients write it.
#[test]
fn keyword_table_names_qualify_columns() {
    for sql in [
        "SELECT * FROM user WHERE user.online = true",
        "SELECT user.* FROM user WHERE user.online = true AND user.name = 'x'",
        "SELECT user.name FROM user",
    ] {
        let Statement::Select(select) = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}")) else {
            panic!("{sql}: not a select");
        };
        let qualified = match (&select.filter, &select.projection) {
            (Some(Expr::Cmp(Operand::Column(c), _, _)), _) => c.clone(),
            (Some(Expr::And(a, _)), _) => match a.as_ref() {
                Expr::Cmp(Operand::Column(c), _, _) => c.clone(),
                other => panic!("{sql}: {other:?}"),
            },
            (None, Projection::Columns(columns)) => columns[0].0.clone(),
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(qualified.table.as_deref(), Some("user"), "{sql}");
    }
    // A real function call is still no column.
    assert!(parse("SELECT * FROM t WHERE now().x = 1").is_err());
}

/// `big(k u32, v u32 indexed)` with `rows` rows (`v = k % 7`), public.
fn big(rows: u32) -> Database {
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().unwrap();
    let big = tx
        .create_table(def(
            "big",
            &[("k", AlgebraicType::U32), ("v", AlgebraicType::U32)],
            &[1],
            true,
        ))
        .unwrap();
    for k in 0..rows {
        tx.insert(
            big,
            ProductValue::from(vec![AlgebraicValue::U32(k), AlgebraicValue::U32(k % 7)]),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    db
}

fn limited(
    db: &Database,
    sql: &str,
    limits: QueryLimits,
) -> (Result<QueryResult, QueryError>, u64) {
    let state = db.read().unwrap();
    let BoundStatement::Select(bound) =
        check(&parse(sql).unwrap(), &*state, Mode::Sql, false, sender()).unwrap()
    else {
        panic!("{sql} is not a SELECT");
    };
    let mut budget = Budget::new(limits);
    let result = eval_select(&state, &bound, &mut budget);
    (result, budget.examined())
}

// Protects issue 12's bound on a non-owner's SQL: a 3-way cross product of
// 2,000-row tables (8·10⁹ tuples) is refused by the rows-examined budget,
// charged while evaluating, so it stops just past the limit instead of after
// enumerating; the error names the limit and its value.
#[test]
fn a_cross_product_is_refused_by_the_rows_examined_budget() {
    let db = big(2_000);
    let max = orrery_api::limits::QUERY_ROWS_EXAMINED_MAX;
    for sql in [
        "SELECT COUNT(*) AS n FROM big a JOIN big b JOIN big c",
        "SELECT a.k, c.v FROM big a JOIN big b JOIN big c WHERE a.k = 1",
    ] {
        let (result, examined) = limited(&db, sql, QueryLimits::NON_OWNER);
        assert_eq!(
            result.unwrap_err(),
            QueryError::Limit(LimitExceeded::RowsExamined { max }),
            "{sql}"
        );
        assert_eq!(examined, max + 1, "{sql} examined past its budget");
    }
    // Returning the tuples, it meets the result-row cap first.
    let rows_max = orrery_api::limits::QUERY_RESULT_ROWS_MAX;
    let (result, examined) = limited(
        &db,
        "SELECT a.* FROM big a JOIN big b JOIN big c",
        QueryLimits::NON_OWNER,
    );
    assert_eq!(
        result.unwrap_err(),
        QueryError::Limit(LimitExceeded::ResultRows { max: rows_max })
    );
    assert!(examined < 2 * rows_max, "examined {examined}");
    let text = err(&db, "SELECT COUNT(*) AS n FROM big a JOIN big b JOIN big c");
    assert!(text.contains(&format!("rows_examined = {max}")), "{text}");
}

// Protects the owner's higher ceiling and the ordinary queries under it: a
// 2-way cross product of 2,000 rows (4·10⁶ tuples) is too much work for a
// non-owner but fine for the owner; an ordinary query works for both.
#[test]
fn owners_get_a_larger_budget_and_ordinary_queries_pass() {
    let db = big(2_000);
    let state = db.read().unwrap();
    let sql = "SELECT COUNT(*) AS n FROM big a JOIN big b";
    assert!(matches!(
        run_query(&state, sql, false, sender()),
        Err(QueryError::Limit(LimitExceeded::RowsExamined { .. }))
    ));
    let owned = run_query(&state, sql, true, sender()).unwrap();
    assert_eq!(
        owned.rows,
        vec![ProductValue::from(vec![AlgebraicValue::U64(4_000_000)])]
    );
    for owner in [false, true] {
        let r = run_query(&state, "SELECT * FROM big WHERE v = 3", owner, sender()).unwrap();
        assert_eq!(r.rows.len(), 286);
        let r = run_query(
            &state,
            "SELECT a.k FROM big a JOIN big b ON a.k = b.v WHERE a.k = 2",
            owner,
            sender(),
        )
        .unwrap();
        assert_eq!(r.rows.len(), 286);
    }
}

// Protects the result caps: rows and bytes are charged per result row, a
// LIMIT within the cap passes, and each refusal names its limit.
#[test]
fn result_rows_and_bytes_are_capped() {
    let db = big(1_000);
    let caps = |rows, bytes| QueryLimits {
        result_rows_max: rows,
        result_bytes_max: bytes,
        ..QueryLimits::NON_OWNER
    };
    let (result, _) = limited(&db, "SELECT * FROM big", caps(999, u64::MAX));
    let e = result.unwrap_err();
    assert_eq!(e, QueryError::Limit(LimitExceeded::ResultRows { max: 999 }));
    assert!(e.to_string().contains("result_rows = 999"), "{e}");
    let (result, _) = limited(&db, "SELECT * FROM big", caps(1_000, u64::MAX));
    assert_eq!(result.unwrap().rows.len(), 1_000);
    let (result, _) = limited(&db, "SELECT * FROM big LIMIT 10", caps(10, u64::MAX));
    assert_eq!(result.unwrap().rows.len(), 10);
    // Each row is two u32s: 8 BSATN bytes; a projection of one column is 4.
    let (result, _) = limited(&db, "SELECT * FROM big", caps(u64::MAX, 7_999));
    assert_eq!(
        result.unwrap_err(),
        QueryError::Limit(LimitExceeded::ResultBytes { max: 7_999 })
    );
    let (result, _) = limited(&db, "SELECT k FROM big", caps(u64::MAX, 4_000));
    assert_eq!(result.unwrap().rows.len(), 1_000);
}

// Protects the wall-time backstop: with no time at all, a query stops at the
// first clock reading.
#[test]
fn wall_time_is_a_limit_too() {
    let db = big(2_000);
    let (result, examined) = limited(
        &db,
        "SELECT COUNT(*) AS n FROM big a JOIN big b",
        QueryLimits {
            wall_time_max: std::time::Duration::ZERO,
            ..QueryLimits::OWNER
        },
    );
    assert_eq!(
        result.unwrap_err(),
        QueryError::Limit(LimitExceeded::WallTime { max_ms: 0 })
    );
    assert!(examined < 10_000, "examined {examined}");
}

// Protects the joins cap: the ceiling itself parses, one more join is
// refused before anything is bound, naming the limit.
#[test]
fn joins_per_query_are_capped() {
    let max = orrery_api::limits::SQL_JOINS_PER_QUERY_MAX;
    let sql = |joins: usize| {
        let mut sql = "SELECT t0.* FROM big t0".to_string();
        for i in 1..=joins {
            sql.push_str(&format!(" JOIN big t{i} ON t{}.k = t{i}.k", i - 1));
        }
        sql
    };
    parse(&sql(max)).unwrap();
    let e = parse(&sql(max + 1)).unwrap_err();
    assert_eq!(
        e,
        SqlError::from(LimitExceeded::Joins {
            joins: max + 1,
            max
        })
    );
    assert!(e.0.contains(&format!("joins_per_query = {max}")), "{e}");
}
