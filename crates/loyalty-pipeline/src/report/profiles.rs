//! The loyalty profile section: NPS, the loyalty ladder, the satisfaction quadrants and
//! loyalty by habit against loyalty by attachment.

use loyalty_report::Section;

use super::table;
use crate::outputs::Outputs;

pub(super) fn section(out: &Outputs) -> Section {
    Section {
        id: "profiles".into(),
        title: "Loyalty profiles".into(),
        paragraphs: vec![
            "NPS is the percentage of promoters (recommend 9-10) minus the percentage of detractors (0-6) among \
             the active customers whose latest survey says how likely they are to recommend. Transactional \
             loyalty is behaviour (recency, frequency, spend, tenure), emotional loyalty is attitude (premium \
             paid, advocacy, engagement); each is high at or above its median: customers loyal by habit \
             stay while nothing better comes along, customers loyal by attachment would stay through it."
                .into(),
        ],
        figures: vec![],
        tables: vec![
            table(&out.nps, "NPS per competition level and value segment (nps.csv)", &[], usize::MAX),
            table(
                &out.ladder,
                "Loyalty-ladder stages and satisfaction quadrants of the active base (loyalty_ladder.csv)",
                &[],
                usize::MAX,
            ),
            table(
                &out.loyalty_kinds,
                "Transactional against emotional loyalty, with the margin each cell brings (loyalty_kinds.csv)",
                &[],
                usize::MAX,
            ),
        ],
    }
}
