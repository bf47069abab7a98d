//! Suite negotiation: the client's offer, and the server's choice or refusal.

use super::error::malformed;
use super::{
    FLAG_ALLOW_PLAIN, FLAG_STABLE_LINK, HandshakeError, MAX_REASON_LEN, ServerConfig, random_bytes,
};
use crate::codec::Reader;
use crate::crypto::record::Suite;

/// What the client offered in msg1.
#[derive(Debug)]
pub(super) struct Offer {
    /// Known suites, in the client's order (unknown ids are skipped).
    pub(super) suites: Vec<Suite>,
    pub(super) allow_plain: bool,
    pub(super) stable_link: bool,
}

impl Offer {
    /// Reads `u8 count | count × u8 suite id | u8 flags`, which must fill the payload.
    pub(super) fn parse(payload: &[u8]) -> Result<Self, HandshakeError> {
        let mut reader = Reader::new(payload);
        let Ok(ids) = reader.read_u8_prefixed() else {
            return match payload.first() {
                None => Err(malformed("msg1: empty payload")),
                Some(&count) => Err(wrong_offer_len(usize::from(count), payload.len() - 1)),
            };
        };
        let (Ok(flags), true) = (reader.read_u8(), reader.is_empty()) else {
            return Err(wrong_offer_len(ids.len(), payload.len() - 1));
        };
        Ok(Self {
            // Ids this side does not know (a newer client's) cannot be chosen: skip them.
            suites: ids.iter().filter_map(|&id| Suite::from_id(id)).collect(),
            allow_plain: flags & FLAG_ALLOW_PLAIN != 0,
            stable_link: flags & FLAG_STABLE_LINK != 0,
        })
    }
}

fn wrong_offer_len(count: usize, follow: usize) -> HandshakeError {
    malformed(format!(
        "msg1: {count} suite ids and a flags byte announced, {follow} bytes follow"
    ))
}

/// The server's pick among the suites both sides allow, or the refusal reason.
pub(super) fn choose_suite(
    config: &ServerConfig,
    offer: &Offer,
) -> Result<Result<Suite, String>, HandshakeError> {
    let plain_ok = config.allow_plain && offer.allow_plain;
    let mut common: Vec<Suite> = Vec::new();
    for &suite in &config.suites {
        if offer.suites.contains(&suite)
            && (!suite.is_plain() || plain_ok)
            && !common.contains(&suite)
        {
            common.push(suite);
        }
    }
    if common.is_empty() {
        let allows = config
            .suites
            .iter()
            .copied()
            .filter(|suite| !suite.is_plain() || config.allow_plain);
        let offered = offer
            .suites
            .iter()
            .copied()
            .filter(|suite| !suite.is_plain() || offer.allow_plain);
        let reason = format!(
            "no common cipher suite; server allows: {}; client offered: {}",
            suite_names(allows),
            suite_names(offered)
        );
        return Ok(Err(truncate_utf8(&reason, MAX_REASON_LEN).to_owned()));
    }
    let index = if config.random_suite {
        random_index(common.len())?
    } else {
        0
    };
    Ok(common
        .get(index)
        .copied()
        .ok_or_else(|| format!("no suite at index {index} of {} common ones", common.len())))
}

/// Comma-separated suite names, or `(none)`.
pub(super) fn suite_names(suites: impl Iterator<Item = Suite>) -> String {
    let names: Vec<&str> = suites.map(Suite::name).collect();
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

/// Longest prefix of `text` of at most `max` bytes ending on a character boundary.
pub(super) fn truncate_utf8(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A uniformly random index below `n` (`n > 0`), by rejection sampling.
pub(super) fn random_index(n: usize) -> Result<usize, HandshakeError> {
    let n64 = u64::try_from(n).unwrap_or(u64::MAX).max(1);
    // The largest multiple of n64 that fits: values at or above it would bias the result.
    let zone = u64::MAX - u64::MAX % n64;
    loop {
        let value = u64::from_le_bytes(random_bytes::<8>()?);
        if value < zone {
            return Ok(usize::try_from(value % n64).unwrap_or(0));
        }
    }
}
