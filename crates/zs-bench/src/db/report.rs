//! The results table of `zs-bench db`, in Markdown, with ZDB's ratios to each peer.

/// What a row's figures are.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// Per second (higher is faster); the name of what is counted.
    Rate(&'static str),
    /// Milliseconds per query (lower is faster).
    Millis,
    /// MiB (lower is smaller).
    Mib,
}

/// One measurement: a figure per system, in the order of the systems.
#[derive(Debug)]
pub struct Row {
    name: String,
    unit: Unit,
    values: Vec<f64>,
}

impl Row {
    pub fn new(name: impl Into<String>, unit: Unit, values: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            unit,
            values,
        }
    }

    /// ZDB (the first system) against system `peer`: its speed over the peer's for rates
    /// and times (above 1: ZDB is faster), its size over the peer's for sizes.
    fn ratio(&self, peer: usize) -> f64 {
        let (zdb, other) = (self.values[0], self.values[peer]);
        match self.unit {
            Unit::Rate(_) | Unit::Mib => zdb / other,
            Unit::Millis => other / zdb,
        }
    }

    fn unit_name(&self) -> String {
        match self.unit {
            Unit::Rate(what) => what.to_owned(),
            Unit::Millis => "ms per query".to_owned(),
            Unit::Mib => "MiB".to_owned(),
        }
    }

    fn format(&self, value: f64) -> String {
        match self.unit {
            Unit::Rate(_) => thousands(value),
            Unit::Millis if value < 10.0 => format!("{value:.2}"),
            Unit::Millis | Unit::Mib => format!("{value:.1}"),
        }
    }
}

/// Prints the rows as a Markdown table: each system's figure, then ZDB's ratio to each peer.
pub fn print_table(names: &[&str], rows: &[Row], rounds: usize) {
    let mut header = String::from("| measurement | unit |");
    let mut rule = String::from("|---|---|");
    for name in names {
        header.push_str(&format!(" {name} |"));
        rule.push_str("---:|");
    }
    for name in &names[1..] {
        header.push_str(&format!(" ZDB/{name} |"));
        rule.push_str("---:|");
    }
    println!();
    println!("{header}");
    println!("{rule}");
    for row in rows {
        let mut line = format!("| {} | {} |", row.name, row.unit_name());
        for &value in &row.values {
            line.push_str(&format!(" {} |", row.format(value)));
        }
        for peer in 1..names.len() {
            line.push_str(&format!(" **{:.2}** |", row.ratio(peer)));
        }
        println!("{line}");
    }
    println!();
    println!(
        "Insert: one load. Queries: medians of {rounds} round(s). Ratios: ZDB's speed over the \
         peer's (above 1: ZDB is faster; for ms rows the peer's time over ZDB's), for the \
         files ZDB's size over the peer's."
    );
}

/// `value` rounded, with thousands separators.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (at, digit) in digits.chars().enumerate() {
        if at > 0 && (digits.len() - at) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.6), "1,234,568");
    }

    #[test]
    fn ratios_are_speeds_for_times_and_rates() {
        let rate = Row::new("r", Unit::Rate("x/s"), vec![200.0, 100.0, 400.0]);
        assert!((rate.ratio(1) - 2.0).abs() < 1e-12);
        assert!((rate.ratio(2) - 0.5).abs() < 1e-12);
        let time = Row::new("t", Unit::Millis, vec![10.0, 20.0, 5.0]);
        assert!((time.ratio(1) - 2.0).abs() < 1e-12);
        assert!((time.ratio(2) - 0.5).abs() < 1e-12);
    }
}
