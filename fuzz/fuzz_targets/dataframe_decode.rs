//! Binary DataFrame decoder: never panics; whatever decodes re-encodes to a canonical form
//! that decodes again to the same encoding (compared as bytes, since NaN != NaN).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zs_wire::DataFrame;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = DataFrame::decode(data) else {
        return;
    };
    let first = frame.encode();
    let again = DataFrame::decode(&first).expect("a re-encoded DataFrame must decode");
    let second = again.encode();
    assert_eq!(first, second, "re-encoding is not stable");
});
