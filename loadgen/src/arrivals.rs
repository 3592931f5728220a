//! When each target was scraped, and by whom: with `--record-scrapes`, every `GET /metrics`
//! is recorded on arrival (wall clock, milliseconds) with the target's index and the scraper's
//! product (the `User-Agent` up to its first `/`, so `Pyrite/0.1.0` and `Prometheus/2.42.0`
//! are told apart). `GET /-/scrapes` on any target returns every record, one per line:
//! `target scraper unix_ms`. Measured at the targets, a scraper's stall shows as a long gap
//! whatever the scraper reports about itself.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// One scrape's arrival at a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub target: usize,
    pub scraper: String,
    /// Milliseconds since the epoch.
    pub at_ms: i64,
}

/// The arrivals so far, shared by the targets of one thread.
#[derive(Default)]
pub struct Arrivals {
    /// Scraper names, indexed by the records' `scraper` number.
    scrapers: RefCell<Vec<String>>,
    /// (target, scraper number, milliseconds since the epoch), in arrival order.
    records: RefCell<Vec<(u32, u16, i64)>>,
}

/// The product a `User-Agent` names: the text up to its first `/`, or up to a space.
fn product(user_agent: &str) -> &str {
    let name = user_agent.split(['/', ' ']).next().unwrap_or("");
    if name.is_empty() {
        "unknown"
    } else {
        name
    }
}

impl Arrivals {
    /// Records a scrape of `target` by a client sending `user_agent`, now.
    pub fn record(&self, target: usize, user_agent: &str) {
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let name = product(user_agent);
        let mut scrapers = self.scrapers.borrow_mut();
        let scraper = match scrapers.iter().position(|s| s == name) {
            Some(i) => i,
            None => {
                scrapers.push(name.to_string());
                scrapers.len() - 1
            }
        };
        self.records.borrow_mut().push((target as u32, scraper as u16, at_ms));
    }

    /// Every record, one `target scraper unix_ms` line each.
    pub fn render(&self) -> String {
        let scrapers = self.scrapers.borrow();
        let records = self.records.borrow();
        let mut out = String::with_capacity(records.len() * 32);
        for &(target, scraper, at_ms) in records.iter() {
            out.push_str(&format!("{target} {} {at_ms}\n", scrapers[scraper as usize]));
        }
        out
    }
}

/// Reads what [`Arrivals::render`] wrote; a line that does not parse is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Arrival>, String> {
    text.lines()
        .map(|line| {
            let mut fields = line.split(' ');
            let (Some(target), Some(scraper), Some(at_ms), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("not `target scraper unix_ms`: {line:?}"));
            };
            let target = target.parse().map_err(|_| format!("bad target in {line:?}"))?;
            let at_ms = at_ms.parse().map_err(|_| format!("bad time in {line:?}"))?;
            Ok(Arrival { target, scraper: scraper.to_string(), at_ms })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_by_scraper_product() {
        let arrivals = Arrivals::default();
        arrivals.record(3, "Prometheus/2.42.0");
        arrivals.record(0, "Pyrite/0.1.0");
        arrivals.record(3, "");
        let read = parse(&arrivals.render()).unwrap();
        let who: Vec<(usize, &str)> = read.iter().map(|a| (a.target, a.scraper.as_str())).collect();
        assert_eq!(who, [(3, "Prometheus"), (0, "Pyrite"), (3, "unknown")]);
        assert!(read.windows(2).all(|w| w[0].at_ms <= w[1].at_ms) && read[0].at_ms > 1_600_000_000_000);
        assert!(parse("1 Pyrite").is_err() && parse("x Pyrite 5").is_err());
    }
}
