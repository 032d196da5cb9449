//! Format rows shared by the job and version pages: the links spec/API.md §9 lists.

use super::encode_segment;
use crate::storage::page_info::FormatSummary;

pub struct FormatRow {
    pub name: String,
    /// `{f}/`, `{f}` (the bundle, to which each encoding's suffix is added), `{f}.sha256`
    pub dir: String,
    pub bundle: String,
    pub sha256: String,
    pub internal: bool,
    pub dirty: bool,
    /// The package repositories it is: "deb", "rpm", both or none.
    pub kinds: Vec<&'static str>,
    /// The job a product format comes from.
    pub job_url: String,
}

impl FormatRow {
    /// Whether the State column has something to say about this format.
    pub fn has_state(&self) -> bool {
        self.internal || self.dirty || !self.kinds.is_empty()
    }
}

pub fn format_rows(formats: &[FormatSummary]) -> Vec<FormatRow> {
    formats
        .iter()
        .map(|f| {
            let seg = encode_segment(&f.name);
            FormatRow {
                name: f.name.clone(),
                dir: format!("{seg}/"),
                bundle: seg.clone(),
                sha256: format!("{seg}.sha256"),
                internal: f.internal,
                dirty: f.dirty,
                kinds: [(f.repos.deb, "deb"), (f.repos.rpm, "rpm")]
                    .into_iter()
                    .filter_map(|(is, kind)| is.then_some(kind))
                    .collect(),
                job_url: f.job_url.clone().unwrap_or_default(),
            }
        })
        .collect()
}
