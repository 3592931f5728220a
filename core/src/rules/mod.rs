//! Recording and alerting rules: rule files as upstream's `rulefmt` reads them, the templates of
//! alert labels and annotations, and the evaluation of groups with their alert state.

mod alert;
mod dependency;
mod error;
mod file;
mod group;
pub mod template;

pub use alert::{Alert, AlertState, Annotations};
pub use error::RuleError;
pub use file::{Rule, RuleFile, RuleFileError, RuleGroup};
pub use group::{
    DueAlert, GroupDefaults, GroupState, GroupStatus, Health, InstantQuery, RuleEval, RuleSettings, RuleState,
    RuleStatus, RuleStorage,
};
