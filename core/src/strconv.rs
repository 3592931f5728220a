//! Go's `strconv` parsing where upstream reads text with it (boolean labels and request
//! parameters), so that Pyrite takes and refuses the same spellings.

/// A boolean as Go's `strconv.ParseBool` reads it; None for any other text.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
