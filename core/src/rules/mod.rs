//! Recording and alerting rules: rule files as upstream's `rulefmt` reads them, the templates of
//! alert labels and annotations, and the evaluation of groups with their alert state.

mod file;
pub mod template;

pub use file::{Rule, RuleFile, RuleFileError, RuleGroup};
