//! The comparison's markdown table: one row per figure, a column per server, and Pyrite's
//! value as a ratio of each peer's.

use super::servers::Kind;

/// One figure for the three servers (in [`Kind::ALL`] order); None where it does not apply.
pub struct Row {
    pub name: String,
    pub values: [Option<f64>; 3],
    /// How to print a value.
    pub format: fn(f64) -> String,
    /// Whether ratios of the values mean anything (not for yes/no figures).
    pub ratios: bool,
}

impl Row {
    pub fn new(name: impl Into<String>, values: [Option<f64>; 3], format: fn(f64) -> String) -> Row {
        Row { name: name.into(), values, format, ratios: true }
    }

    fn cell(&self, v: Option<f64>) -> String {
        v.map(self.format).unwrap_or_else(|| "n/a".to_string())
    }

    fn ratio(&self, peer: usize) -> String {
        match (self.values[0], self.values[peer]) {
            (Some(ours), Some(theirs)) if theirs != 0.0 && self.ratios => format!("{:.2}", ours / theirs),
            _ => "–".into(),
        }
    }
}

pub fn integer(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

pub fn mib(v: f64) -> String {
    format!("{:.0} MiB", v / (1024.0 * 1024.0))
}

pub fn bytes(v: f64) -> String {
    format!("{v:.0} B")
}

pub fn two_decimals(v: f64) -> String {
    format!("{v:.2}")
}

pub fn millis(v: f64) -> String {
    format!("{:.1} ms", v * 1e3)
}

pub fn seconds(v: f64) -> String {
    format!("{v:.2} s")
}

pub fn yes_no(v: f64) -> String {
    if v > 0.0 { "yes" } else { "no" }.into()
}

/// The table, in markdown.
pub fn table(rows: &[Row]) -> String {
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    let mut out = format!(
        "| figure | {} | {} | {} | pyrite / {} | pyrite / {} |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
        names[0], names[1], names[2], names[1], names[2]
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.cell(r.values[0]),
            r.cell(r.values[1]),
            r.cell(r.values[2]),
            r.ratio(1),
            r.ratio(2)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_values_and_ratios_against_each_peer() {
        let rows = [
            Row::new("samples", [Some(1_234_567.0), Some(2_469_134.0), None], integer),
            Row::new("rss", [Some(100.0 * 1048576.0), Some(400.0 * 1048576.0), Some(50.0 * 1048576.0)], mib),
        ];
        let t = table(&rows);
        assert!(t.contains("| samples | 1,234,567 | 2,469,134 | n/a | 0.50 | – |"), "{t}");
        assert!(t.contains("| rss | 100 MiB | 400 MiB | 50 MiB | 0.25 | 2.00 |"), "{t}");
    }
}
