//! JSON form of a DataFrame: parsing arbitrary text never panics, and the typed JSON written
//! for anything that parsed must parse back (and write the same text again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zs_wire::DataFrame;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(frame) = DataFrame::from_json_str(text) else {
        return;
    };
    let written = frame.to_json_string();
    let parsed = match DataFrame::from_json_str(&written) {
        Ok(parsed) => parsed,
        Err(error) => panic!("own JSON does not parse back: {error}\n{written}"),
    };
    // Typed JSON is a fixed point: writing what was read back gives the same text.
    assert_eq!(parsed.to_json_string(), written, "typed JSON is not stable");
});
