//! IBM's Telco Customer Churn sample (`wa_churn.csv`, modeldata) into the contract.
//!
//! One snapshot without dates, so the snapshot is placed at [`SNAPSHOT`] (a
//! month end). Mapping:
//! - customers: `rownames` is the customer id; postpaid; signup = snapshot - tenure
//!   months; contract Month-to-month/One year/Two year -> 0/12/24 months; a churner
//!   (`churn` = Yes) gets churn_date = snapshot + 1 day, so features as of the snapshot
//!   predict it and `loyalty churn` labels it "churned within h months"; one market.
//! - billing: one bill per month of tenure, the last at `monthly_charges`, earlier ones
//!   at the mean of the rest of `total_charges` (the history is not in the data).
//!   Customers with tenure 0 (total_charges empty) have no bill.
//! - services: phone, a second line, DSL or fiber internet, and the six internet
//!   add-ons the customer holds, started at signup; the catalog has no prices (0).
//! - lost: gender, senior_citizen, partner, dependents, paperless_billing,
//!   payment_method (the contract has no columns for them).

use std::path::Path;

use chrono::{Months, NaiveDate};
use polars::prelude::*;

use super::{ImportError, billing_frame, date_column, days, parse_csv};

/// The date the snapshot is placed at.
pub const SNAPSHOT: (i32, u32, u32) = (2024, 12, 31);

const HEADER: [&str; 21] = [
    "rownames",
    "churn",
    "female",
    "senior_citizen",
    "partner",
    "dependents",
    "tenure",
    "phone_service",
    "multiple_lines",
    "internet_service",
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
    "contract",
    "paperless_billing",
    "payment_method",
    "monthly_charges",
    "total_charges",
];

const ADD_ONS: [&str; 6] =
    ["online_security", "online_backup", "device_protection", "tech_support", "streaming_tv", "streaming_movies"];

#[derive(Debug, Clone, PartialEq)]
pub struct Subscriber {
    pub id: i64,
    pub churn: bool,
    pub tenure: u32,
    pub contract_months: i64,
    pub monthly_charges: f64,
    pub total_charges: Option<f64>,
    pub services: Vec<&'static str>,
}

pub fn parse(bytes: &[u8], path: &Path) -> Result<Vec<Subscriber>, ImportError> {
    parse_csv(bytes, path, &HEADER, |r| {
        let yes_no = |name: &str| r.flag(name, &["Yes", "1"], &["No", "0", "No phone service", "No internet service"]);
        let id = r.whole("rownames", i64::MAX, "not a whole number >= 0")?;
        let tenure = r.whole("tenure", 1200u32, "not a whole number of months (0..1200)")?;
        let monthly_charges = r.amount("monthly_charges")?;
        let total_charges = match r.get("total_charges") {
            "" | "NA" => None,
            _ => Some(r.amount("total_charges")?),
        };
        let contract_months = match r.get("contract") {
            "Month-to-month" => 0,
            "One year" => 12,
            "Two year" => 24,
            v => return Err(r.err("contract", v, "expected Month-to-month, One year or Two year")),
        };
        let mut services = Vec::new();
        if yes_no("phone_service")? {
            services.push("phone");
        }
        if yes_no("multiple_lines")? {
            services.push("second_line");
        }
        match r.get("internet_service") {
            "DSL" => services.push("internet_dsl"),
            "Fiber optic" => services.push("internet_fiber"),
            "No" => {}
            v => return Err(r.err("internet_service", v, "expected DSL, Fiber optic or No")),
        }
        for add_on in ADD_ONS {
            if yes_no(add_on)? {
                services.push(add_on);
            }
        }
        Ok(Subscriber {
            id,
            churn: yes_no("churn")?,
            tenure,
            contract_months,
            monthly_charges,
            total_charges,
            services,
        })
    })
}

/// The contract tables of the parsed subscribers.
pub fn tables(subs: &[Subscriber]) -> PolarsResult<Vec<(&'static str, DataFrame)>> {
    use loyalty_contract::col as c;
    let snapshot = NaiveDate::from_ymd_opt(SNAPSHOT.0, SNAPSHOT.1, SNAPSHOT.2).expect("valid date");
    let n = subs.len();
    let signup = |s: &Subscriber| snapshot.checked_sub_months(Months::new(s.tenure)).unwrap_or(snapshot);
    let churn_day = snapshot.succ_opt().expect("valid date");
    let customers = DataFrame::new_infer_height(vec![
        Column::new(c::CUSTOMER_ID.into(), subs.iter().map(|s| s.id).collect::<Vec<i64>>()),
        date_column(c::SIGNUP_DATE, subs.iter().map(|s| Some(days(signup(s)))).collect())?,
        Column::new(c::MARKET_ID.into(), vec!["ibm-telco"; n]),
        Column::new(c::PLAN_TYPE.into(), vec!["postpaid"; n]),
        Column::new(c::CONTRACT_MONTHS.into(), subs.iter().map(|s| s.contract_months).collect::<Vec<i64>>()),
        date_column(c::CHURN_DATE, subs.iter().map(|s| s.churn.then(|| days(churn_day))).collect())?,
        Column::new(
            c::CHURN_REASON.into(),
            subs.iter().map(|s| s.churn.then_some("unknown")).collect::<Vec<Option<&str>>>(),
        ),
    ])?;
    let (mut b_id, mut b_month, mut b_charge) = (vec![], vec![], vec![]);
    let last_month = NaiveDate::from_ymd_opt(SNAPSHOT.0, SNAPSHOT.1, 1).expect("valid date");
    for s in subs {
        let Some(total) = s.total_charges else { continue };
        let earlier = if s.tenure > 1 { ((total - s.monthly_charges) / f64::from(s.tenure - 1)).max(0.0) } else { 0.0 };
        for k in 0..s.tenure {
            let Some(month) = last_month.checked_sub_months(Months::new(k)) else { break };
            b_id.push(s.id);
            b_month.push(days(month));
            b_charge.push(if k == 0 { s.monthly_charges } else { earlier });
        }
    }
    let billing = billing_frame(b_id, b_month, b_charge, None)?;
    let (mut s_id, mut s_name, mut s_start) = (vec![], vec![], vec![]);
    for s in subs {
        for name in &s.services {
            s_id.push(s.id);
            s_name.push(*name);
            s_start.push(Some(days(signup(s))));
        }
    }
    let k = s_id.len();
    let services = DataFrame::new_infer_height(vec![
        Column::new(c::CUSTOMER_ID.into(), s_id),
        Column::new(c::SERVICE.into(), s_name),
        date_column(c::START_DATE, s_start)?,
        Column::full_null(c::END_DATE.into(), k, &DataType::Date),
    ])?;
    let names: Vec<&str> =
        ["phone", "second_line", "internet_dsl", "internet_fiber"].into_iter().chain(ADD_ONS).collect();
    let catalog = DataFrame::new_infer_height(vec![
        Column::new(c::SERVICE.into(), names.clone()),
        Column::new(c::MONTHLY_PRICE.into(), vec![0.0; names.len()]),
        Column::new(c::MONTHLY_MARGIN.into(), vec![0.0; names.len()]),
    ])?;
    Ok(vec![("customers", customers), ("billing", billing), ("services", services), ("service_catalog", catalog)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> String {
        HEADER.join(",")
    }

    #[test]
    fn parses_the_published_layout() {
        let text = format!(
            "{}\n1,No,1,0,1,0,1,0,No phone service,DSL,No,Yes,No,No,No,No,Month-to-month,1,Electronic check,29.85,29.85\n\
             489,Yes,1,0,1,1,0,0,No phone service,Fiber optic,Yes,No,Yes,Yes,Yes,No,Two year,1,Bank transfer (automatic),52.55,\n",
            header()
        );
        let s = parse(text.as_bytes(), Path::new("wa.csv")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].services, ["internet_dsl", "online_backup"]);
        assert_eq!((s[1].churn, s[1].contract_months, s[1].total_charges), (true, 24, None));
        let t = tables(&s).unwrap();
        assert_eq!(t[1].1.height(), 1); // one bill: customer 1's single month; 489 has tenure 0
    }

    #[test]
    fn malformed_lines_name_line_and_field() {
        let row =
            "1,No,1,0,1,0,1,0,No phone service,DSL,No,Yes,No,No,No,No,Month-to-month,1,Electronic check,29.85,29.85";
        let cases = [
            (row.replace("Month-to-month", "Weekly"), "contract"),
            (row.replace(",29.85,29.85", ",x,29.85"), "monthly_charges"),
            (row.replacen("1,No", "a,No", 1), "rownames"),
            (row.replace(",DSL,", ",Cable,"), "internet_service"),
            (format!("{row},extra"), "line"),
        ];
        for (bad, field) in cases {
            let text = format!("{}\n{row}\n{bad}\n", header());
            let e = parse(text.as_bytes(), Path::new("wa.csv")).unwrap_err();
            assert_eq!((e.line, e.field.as_str()), (3, field), "{e}");
        }
        let e = parse(b"a,b\n", Path::new("wa.csv")).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "header"));
    }
}
