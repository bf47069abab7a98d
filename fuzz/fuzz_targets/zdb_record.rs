//! ZDB records from untrusted bytes: decoding never panics, and a decoded record encodes to
//! a form that decodes to the same record; its fields can be read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zs_db::Record;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::decode(data) {
        let _ = record.field("a.b");
        if let Ok(encoded) = record.encode() {
            let again = Record::decode(&encoded).expect("an encoded record decodes");
            assert_eq!(again, record);
        }
    }
});
