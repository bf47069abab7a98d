//! The dataset of `zs-bench db` (records made from their index, the same in every run) and
//! what the systems' queries return.

use std::collections::BTreeMap;

use super::CITIES;

/// One record of the dataset.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub age: i64,
    pub city: String,
    pub score: f64,
    pub note: String,
}

impl Person {
    /// Record `index` (0-based; stored under id `index + 1` everywhere).
    pub fn generate(index: u64) -> Self {
        const FILLER: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do \
            eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, \
            quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.";
        let offset = (index % 97) as usize;
        Self {
            name: format!("p{index}"),
            age: (index % 90) as i64,
            city: format!("c{}", mix(index) % CITIES),
            score: unit_float(mix(index ^ 0x5eed_5eed_5eed_5eed)) * 100.0,
            note: FILLER[offset..offset + 120].to_owned(),
        }
    }

    /// The record as the JSON object ZDB and raw redb store.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "age": self.age,
            "city": self.city,
            "score": self.score,
            "note": self.note,
        })
    }
}

/// splitmix64's finalizer: a well-spread hash of `x`.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A float in `[0, 1)` from the top 53 bits of `bits`.
fn unit_float(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// What a query found: how many records and the sum of their ids (the same set everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Matches {
    pub count: u64,
    pub id_sum: u64,
}

impl Matches {
    pub fn add(&mut self, id: u64) {
        self.count += 1;
        self.id_sum += id;
    }
}

/// Count and average of `score` per city.
pub type Groups = BTreeMap<String, (u64, f64)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_about_200_bytes_and_deterministic() {
        for index in [0, 1, 42, 99_999, 999_999] {
            let person = Person::generate(index);
            let bytes = serde_json::to_vec(&person.json()).expect("JSON");
            assert!((180..=230).contains(&bytes.len()), "{} bytes", bytes.len());
            assert_eq!(person.json(), Person::generate(index).json());
        }
    }
}
