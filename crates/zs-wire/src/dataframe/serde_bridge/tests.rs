//! Round trips and error cases of the serde bridge.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use serde::de::{SeqAccess, Visitor};

use super::*;
use crate::dataframe::ValueKind;
use crate::dataframe::binary::tests as binary_tests;

/// Bytes through `serialize_bytes`, like `serde_bytes::ByteBuf`.
#[derive(Debug, Clone, PartialEq)]
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Blob, E> {
                Ok(Blob(bytes.to_vec()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
                let mut bytes = Vec::new();
                while let Some(byte) = seq.next_element()? {
                    bytes.push(byte);
                }
                Ok(Blob(bytes))
            }
        }
        deserializer.deserialize_byte_buf(BlobVisitor)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Role {
    Guest,
    Member(u64),
    Admin { level: u8, since: String },
    Pair(i16, bool),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    city: String,
    zip: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session(u64);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Login {
    user: String,
    age: u8,
    tags: Vec<String>,
    nick: Option<String>,
    missing: Option<u32>,
    address: Address,
    scores: BTreeMap<String, i32>,
    attributes: HashMap<u32, String>,
    roles: Vec<Role>,
    avatar: Blob,
    raw: Vec<u8>,
    samples: Vec<u32>,
    position: (f32, f64),
    session: Session,
    initial: char,
    nothing: (),
}

fn login() -> Login {
    Login {
        user: "alice".into(),
        age: 42,
        tags: vec!["admin".into(), "ops".into()],
        nick: Some("al".into()),
        missing: None,
        address: Address {
            city: "Paris".into(),
            zip: Some(75001),
        },
        scores: BTreeMap::from([("chess".into(), -3), ("go".into(), 7)]),
        attributes: HashMap::from([(1, "one".into()), (2, "two".into())]),
        roles: vec![
            Role::Guest,
            Role::Member(9),
            Role::Admin {
                level: 3,
                since: "2024".into(),
            },
            Role::Pair(-1, true),
        ],
        avatar: Blob(vec![0, 1, 2, 255]),
        raw: vec![7, 8, 9],
        samples: vec![1, 2, u32::MAX],
        position: (1.5, -2.25),
        session: Session(77),
        initial: 'é',
        nothing: (),
    }
}

fn round_trip<T>(value: &T) -> T
where
    T: Serialize + de::DeserializeOwned,
{
    let frame = DataFrame::from_serialize(value).expect("serializes");
    let decoded = DataFrame::decode(&frame.encode()).expect("own encoding decodes");
    assert_eq!(decoded.encode(), frame.encode());
    decoded.deserialize_into().expect("deserializes")
}

#[test]
fn realistic_struct_round_trips_and_keeps_rust_types() {
    let login = login();
    let frame = DataFrame::from_serialize(&login).unwrap();
    assert_eq!(frame.len(), 16, "one value per field, positional");
    assert_eq!(frame.get(0), Some(&Value::String("alice".into())));
    assert_eq!(frame.get(1), Some(&Value::U8(42)));
    assert_eq!(
        frame.get(2),
        Some(&Value::Frame(DataFrame::new().with("admin").with("ops")))
    );
    assert_eq!(frame.get(3), Some(&Value::String("al".into())));
    assert_eq!(frame.get(4), Some(&Value::Null));
    assert_eq!(
        frame.get(5),
        Some(&Value::Frame(DataFrame::new().with("Paris").with(75001u32)))
    );
    assert_eq!(
        frame.get(6),
        Some(&Value::Frame(
            DataFrame::new()
                .with("chess")
                .with(-3i32)
                .with("go")
                .with(7i32)
        ))
    );
    let Some(Value::Frame(roles)) = frame.get(8) else {
        panic!("roles are a frame: {:?}", frame.get(8));
    };
    assert_eq!(
        roles.values(),
        [
            Value::Frame(DataFrame::new().with("Guest")),
            Value::Frame(DataFrame::new().with("Member").with(9u64)),
            Value::Frame(DataFrame::new().with("Admin").with(3u8).with("2024")),
            Value::Frame(DataFrame::new().with("Pair").with(-1i16).with(true)),
        ]
    );
    assert_eq!(frame.get(9), Some(&Value::Bytes(vec![0, 1, 2, 255])));
    assert_eq!(frame.get(10), Some(&Value::Bytes(vec![7, 8, 9])));
    assert_eq!(frame.get(11), Some(&Value::ArrayU32(vec![1, 2, u32::MAX])));
    assert_eq!(
        frame.get(12),
        Some(&Value::Frame(DataFrame::new().with(1.5f32).with(-2.25f64)))
    );
    assert_eq!(frame.get(13), Some(&Value::U64(77)));
    assert_eq!(frame.get(14), Some(&Value::String("é".into())));
    assert_eq!(frame.get(15), Some(&Value::Null));

    assert_eq!(frame.deserialize_into::<Login>().unwrap(), login);
    assert_eq!(round_trip(&login), login);
    assert_eq!(
        from_value::<Login>(&to_value(&login).unwrap()).unwrap(),
        login
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Extremes {
    i8s: (i8, i8),
    i16s: (i16, i16),
    i32s: (i32, i32),
    i64s: (i64, i64),
    u8s: (u8, u8),
    u16s: (u16, u16),
    u32s: (u32, u32),
    u64s: (u64, u64),
    f32s: [f32; 5],
    f64s: [f64; 5],
    i128s: (i128, i128),
    u128: u128,
}

#[test]
fn numbers_at_their_extremes_round_trip_with_their_own_types() {
    let extremes = Extremes {
        i8s: (i8::MIN, i8::MAX),
        i16s: (i16::MIN, i16::MAX),
        i32s: (i32::MIN, i32::MAX),
        i64s: (i64::MIN, i64::MAX),
        u8s: (u8::MIN, u8::MAX),
        u16s: (u16::MIN, u16::MAX),
        u32s: (u32::MIN, u32::MAX),
        u64s: (u64::MIN, u64::MAX),
        f32s: [f32::MIN, f32::MAX, f32::MIN_POSITIVE, f32::INFINITY, -0.0],
        f64s: [
            f64::MIN,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NEG_INFINITY,
            f64::EPSILON,
        ],
        i128s: (i64::MIN.into(), i64::MAX.into()),
        u128: u64::MAX.into(),
    };
    let frame = DataFrame::from_serialize(&extremes).unwrap();
    assert_eq!(frame.get(0), Some(&Value::ArrayI8(vec![i8::MIN, i8::MAX])));
    assert_eq!(frame.get(4), Some(&Value::Bytes(vec![0, u8::MAX])));
    assert_eq!(frame.get(7), Some(&Value::ArrayU64(vec![0, u64::MAX])));
    assert_eq!(frame.get(8).map(Value::kind), Some(ValueKind::ArrayF32));
    assert_eq!(frame.get(11), Some(&Value::U64(u64::MAX)));
    assert_eq!(round_trip(&extremes), extremes);

    let error = DataFrame::from_serialize(&u128::MAX).unwrap_err();
    assert!(error.to_string().contains("does not fit"), "{error}");
    assert!(DataFrame::from_serialize(&i128::MIN).is_err());
}

#[test]
fn integers_are_lenient_when_they_fit_and_errors_when_they_do_not() {
    let frame = DataFrame::new().with(5u8).with(-7i64).with(300u64);
    assert_eq!(
        frame.deserialize_into::<(u64, i8, i16)>().unwrap(),
        (5, -7, 300)
    );
    assert_eq!(
        frame.deserialize_into::<(f64, f32, u128)>().unwrap(),
        (5.0, -7.0, 300)
    );
    let error = frame.deserialize_into::<(u8, i8, u8)>().unwrap_err();
    assert_eq!(error.path(), [2]);
    assert_eq!(error.to_string(), "at [2]: u64 300 does not fit in u8");
    let error = frame.deserialize_into::<(u8, u32, u16)>().unwrap_err();
    assert_eq!(error.to_string(), "at [1]: i64 -7 does not fit in u32");
    // A float is not an integer.
    assert!(
        DataFrame::new()
            .with(1.0f64)
            .deserialize_into::<i32>()
            .is_err()
    );
}

#[test]
fn wrong_types_are_errors_naming_the_problem() {
    // A string where the struct has a u32, at the top level.
    let frame = DataFrame::new()
        .with("not a number")
        .with(DataFrame::new().with("Paris").with(1u32));
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Pair {
        count: u32,
        address: Address,
    }
    let error = frame.deserialize_into::<Pair>().unwrap_err();
    assert_eq!(error.path(), [0]);
    assert_eq!(
        error.to_string(),
        r#"at [0]: invalid type: string "not a number", expected u32"#
    );

    // Deeper: the zip inside the nested address.
    let frame = DataFrame::new()
        .with(1u32)
        .with(DataFrame::new().with("Paris").with(true));
    let error = frame.deserialize_into::<Pair>().unwrap_err();
    assert_eq!(error.path(), [1, 1]);
    assert!(error.message().contains("expected u32"), "{error}");

    // Missing and extra values.
    let error = DataFrame::new()
        .with(1u32)
        .deserialize_into::<Pair>()
        .unwrap_err();
    assert!(error.to_string().contains("invalid length 1"), "{error}");
    let error = DataFrame::new()
        .with(1u8)
        .with(2u8)
        .with(3u8)
        .deserialize_into::<(u8, u8)>()
        .unwrap_err();
    assert_eq!(error.to_string(), "3 values where the type reads only 2");

    // Unknown enum variant, odd map, scalar where a single value is expected.
    let error = DataFrame::new()
        .with(DataFrame::new().with("Nobody"))
        .deserialize_into::<Role>()
        .unwrap_err();
    assert!(
        error.to_string().contains("unknown variant `Nobody`"),
        "{error}"
    );
    let error = DataFrame::new()
        .with(DataFrame::new().with("k"))
        .deserialize_into::<BTreeMap<String, u8>>()
        .unwrap_err();
    assert!(error.to_string().contains("odd number"), "{error}");
    let error = DataFrame::new()
        .with(1u8)
        .with(2u8)
        .deserialize_into::<u8>()
        .unwrap_err();
    assert!(error.to_string().contains("exactly one value"), "{error}");
}

#[test]
fn top_level_values_that_are_not_sequences_are_a_single_value() {
    assert_eq!(
        DataFrame::from_serialize(&42u32).unwrap(),
        DataFrame::new().with(42u32)
    );
    assert_eq!(
        DataFrame::from_serialize("hi").unwrap(),
        DataFrame::new().with("hi")
    );
    assert_eq!(
        DataFrame::from_serialize(&Role::Member(1)).unwrap(),
        DataFrame::new().with(DataFrame::new().with("Member").with(1u64))
    );
    assert_eq!(
        DataFrame::from_serialize(&()).unwrap(),
        DataFrame::new().with(())
    );
    assert_eq!(
        DataFrame::from_serialize(&Session(3)).unwrap(),
        DataFrame::new().with(3u64)
    );
    // A top-level sequence is the frame itself, not packed.
    assert_eq!(
        DataFrame::from_serialize(&vec![1u8, 2]).unwrap(),
        DataFrame::new().with(1u8).with(2u8)
    );
    assert_eq!(round_trip(&42u32), 42);
    assert_eq!(round_trip(&Role::Guest), Role::Guest);
    assert_eq!(round_trip(&Some(5i16)), Some(5));
    assert_eq!(round_trip(&None::<String>), None);
    assert_eq!(round_trip(&vec![1u8, 2]), vec![1, 2]);
    let map = BTreeMap::from([(1u8, "a".to_owned()), (2, "b".to_owned())]);
    assert_eq!(round_trip(&map), map);
    DataFrame::new().deserialize_into::<()>().unwrap();
    assert_eq!(
        DataFrame::new().deserialize_into::<Option<u8>>().unwrap(),
        None
    );
}

#[test]
fn untagged_and_internally_tagged_enums_work() {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Number(u32),
        Text(String),
        // Inline struct variants of untagged enums only read maps: wrap a struct instead.
        Point(Point),
        Raw(Vec<u8>),
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Point {
        x: i32,
        y: i32,
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    enum Shape {
        Dot,
        Circle { radius: f64 },
        Rect { width: f64, height: f64 },
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "t", content = "c")]
    enum Adjacent {
        // A unit variant would be written without content, which positional reading refuses.
        Named(String),
        Pair(u8, i64),
    }
    let loose = vec![
        Loose::Number(7),
        Loose::Text("x".into()),
        Loose::Point(Point { x: -1, y: 2 }),
        Loose::Raw(vec![1, 2, 3]),
    ];
    assert_eq!(round_trip(&loose), loose);
    let shapes = vec![
        Shape::Dot,
        Shape::Circle { radius: 1.5 },
        Shape::Rect {
            width: 2.0,
            height: 3.0,
        },
    ];
    assert_eq!(round_trip(&shapes), shapes);
    let adjacent = vec![Adjacent::Named("n".into()), Adjacent::Pair(1, -1)];
    assert_eq!(round_trip(&adjacent), adjacent);
}

#[test]
fn serde_json_values_and_json_values_work() {
    let json = serde_json::json!(["a", 1, -2, 2.5, true, null, [1, [2]]]);
    assert_eq!(round_trip(&json), json);
    assert_eq!(round_trip(&serde_json::json!(12)), serde_json::json!(12));
    // Any frame reads as serde_json::Value, bytes as an array of numbers.
    let frame = DataFrame::new()
        .with(vec![1u8, 2])
        .with(1.5f32)
        .with(DataFrame::new().with("k").with(1u8));
    assert_eq!(
        frame.deserialize_into::<serde_json::Value>().unwrap(),
        serde_json::json!([[1, 2], 1.5, ["k", 1]])
    );

    // Hand-written plain JSON input reads into typed structs, objects by field name.
    #[derive(Debug, PartialEq, Deserialize)]
    struct Call {
        name: String,
        age: u8,
        admin: bool,
        address: Address,
        roles: Vec<Role>,
    }
    let frame = DataFrame::from_json_str(
        r#"["bob", 30, true, {"city": "Oslo", "zip": null}, [{"Member": 4}, "Guest"]]"#,
    )
    .unwrap();
    assert_eq!(
        frame.deserialize_into::<Call>().unwrap(),
        Call {
            name: "bob".into(),
            age: 30,
            admin: true,
            address: Address {
                city: "Oslo".into(),
                zip: None
            },
            roles: vec![Role::Member(4), Role::Guest],
        }
    );
    let error = DataFrame::from_json_str(r#"["bob", 300, true, {"city": "Oslo"}, []]"#)
        .unwrap()
        .deserialize_into::<Call>()
        .unwrap_err();
    assert_eq!(error.to_string(), "at [1]: i64 300 does not fit in u8");
}

#[test]
fn skipped_fields_keep_their_position_and_flatten_works() {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Sparse {
        #[serde(skip_serializing_if = "Option::is_none")]
        first: Option<u8>,
        second: String,
    }
    let sparse = Sparse {
        first: None,
        second: "s".into(),
    };
    assert_eq!(round_trip(&sparse), sparse);

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Outer {
        id: u32,
        #[serde(flatten)]
        address: Address,
    }
    let outer = Outer {
        id: 1,
        address: Address {
            city: "Rome".into(),
            zip: Some(1),
        },
    };
    assert_eq!(round_trip(&outer), outer);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Arbitrary {
    flag: bool,
    small: i8,
    short: i16,
    int: i32,
    long: i64,
    byte: u8,
    ushort: u16,
    uint: u32,
    ulong: u64,
    single: f32,
    double: f64,
    text: String,
    letter: char,
    bytes: Vec<u8>,
    maybe: Option<i32>,
    names: Vec<String>,
    longs: Vec<i64>,
    pair: (u8, String),
    map: BTreeMap<String, u16>,
    nested: Option<Address>,
    role: Role,
}

fn arbitrary_role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Guest),
        any::<u64>().prop_map(Role::Member),
        (any::<u8>(), ".*").prop_map(|(level, since)| Role::Admin { level, since }),
        (any::<i16>(), any::<bool>()).prop_map(|(a, b)| Role::Pair(a, b)),
    ]
}

fn arbitrary_struct() -> impl Strategy<Value = Arbitrary> {
    let not_nan32 = any::<f32>().prop_filter("NaN != NaN", |x| !x.is_nan());
    let not_nan64 = any::<f64>().prop_filter("NaN != NaN", |x| !x.is_nan());
    let scalars = (
        any::<bool>(),
        any::<i8>(),
        any::<i16>(),
        any::<i32>(),
        any::<i64>(),
        any::<u8>(),
        any::<u16>(),
        any::<u32>(),
        any::<u64>(),
        not_nan32,
        not_nan64,
    );
    let rest = (
        ".*",
        any::<char>(),
        proptest::collection::vec(any::<u8>(), 0..32),
        any::<Option<i32>>(),
        proptest::collection::vec(".*", 0..4),
        proptest::collection::vec(any::<i64>(), 0..4),
        (any::<u8>(), ".*"),
        proptest::collection::btree_map(".*", any::<u16>(), 0..4),
        proptest::option::of((".*", any::<Option<u32>>())),
        arbitrary_role(),
    );
    (scalars, rest).prop_map(
        |(
            (flag, small, short, int, long, byte, ushort, uint, ulong, single, double),
            (text, letter, bytes, maybe, names, longs, pair, map, nested, role),
        )| Arbitrary {
            flag,
            small,
            short,
            int,
            long,
            byte,
            ushort,
            uint,
            ulong,
            single,
            double,
            text,
            letter,
            bytes,
            maybe,
            names,
            longs,
            pair,
            map,
            nested: nested.map(|(city, zip)| Address { city, zip }),
            role,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_structs_round_trip_through_the_binary_encoding(value in arbitrary_struct()) {
        let frame = DataFrame::from_serialize(&value).expect("serializes");
        let decoded = DataFrame::decode(&frame.encode()).expect("decodes");
        let through_value = to_value(&value).expect("to_value");
        prop_assert_eq!(&from_value::<Arbitrary>(&through_value).expect("from_value"), &value);
        prop_assert_eq!(decoded.deserialize_into::<Arbitrary>().expect("deserializes"), value);
    }

    #[test]
    fn arbitrary_frames_deserialize_or_fail_without_panicking(
        values in proptest::collection::vec(binary_tests::arbitrary_value(), 0..8)
    ) {
        let frame = DataFrame::from_values(values);
        let _ = frame.deserialize_into::<Arbitrary>();
        let _ = frame.deserialize_into::<Login>();
        let _ = frame.deserialize_into::<Vec<Role>>();
        let _ = frame.deserialize_into::<HashMap<String, Vec<u8>>>();
        let _ = frame.deserialize_into::<(Option<Blob>, u8, String)>();
        prop_assert!(frame.deserialize_into::<serde::de::IgnoredAny>().is_ok());
        // Frames and bytes read as arrays, so every frame reads as a JSON value.
        prop_assert!(frame.deserialize_into::<serde_json::Value>().is_ok());
    }
}
