//! The MLC++ telecom churn table (`mlc_churn.csv`, modeldata) into the contract.
//!
//! One snapshot without dates, placed at [`SNAPSHOT`] like wa-churn. Mapping:
//! - customers: `rownames` is the id; postpaid without a contract; market = `state`;
//!   signup = snapshot - `account_length` days; churners (`churn` = yes) get
//!   churn_date = snapshot + 1 day.
//! - billing: one bill, for the snapshot's month: total_charge = the day, evening,
//!   night and international charges; voice_minutes = their minutes.
//! - interactions: `number_customer_service_calls` calls (kind `inquiry`, channel
//!   `call`) in the snapshot's month.
//! - services: `international` and `voice_mail` plans, started at signup (no prices).
//! - lost: area_code, the call counts, voice-mail messages, the split by time of day.

use std::path::Path;

use chrono::{Days, NaiveDate};
use polars::prelude::*;

use super::{ImportError, billing_frame, date_column, days, parse_csv};

pub const SNAPSHOT: (i32, u32, u32) = (2024, 12, 31);

const HEADER: [&str; 21] = [
    "rownames",
    "state",
    "account_length",
    "area_code",
    "international_plan",
    "voice_mail_plan",
    "number_vmail_messages",
    "total_day_minutes",
    "total_day_calls",
    "total_day_charge",
    "total_eve_minutes",
    "total_eve_calls",
    "total_eve_charge",
    "total_night_minutes",
    "total_night_calls",
    "total_night_charge",
    "total_intl_minutes",
    "total_intl_calls",
    "total_intl_charge",
    "number_customer_service_calls",
    "churn",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Subscriber {
    pub id: i64,
    pub state: String,
    pub account_days: u32,
    pub international: bool,
    pub voice_mail: bool,
    pub minutes: f64,
    pub charge: f64,
    pub care_calls: u32,
    pub churn: bool,
}

pub fn parse(bytes: &[u8], path: &Path) -> Result<Vec<Subscriber>, ImportError> {
    parse_csv(bytes, path, &HEADER, |r| {
        let yes_no = |name: &str| r.flag(name, &["yes", "Yes"], &["no", "No"]);
        let id = r.whole("rownames", i64::MAX, "not a whole number >= 0")?;
        let state = r.get("state");
        if state.is_empty() || state.len() > 8 {
            return Err(r.err("state", state, "expected a short region code"));
        }
        let (mut minutes, mut charge) = (0.0, 0.0);
        for part in ["day", "eve", "night", "intl"] {
            minutes += r.amount(&format!("total_{part}_minutes"))?;
            charge += r.amount(&format!("total_{part}_charge"))?;
        }
        Ok(Subscriber {
            id,
            state: state.to_string(),
            account_days: r.whole("account_length", 36_500u32, "not a whole number in 0..=36500")?,
            international: yes_no("international_plan")?,
            voice_mail: yes_no("voice_mail_plan")?,
            minutes,
            charge,
            care_calls: r.whole("number_customer_service_calls", 1_000u32, "not a whole number in 0..=1000")?,
            churn: yes_no("churn")?,
        })
    })
}

pub fn tables(subs: &[Subscriber]) -> PolarsResult<Vec<(&'static str, DataFrame)>> {
    use loyalty_contract::col as c;
    let snapshot = NaiveDate::from_ymd_opt(SNAPSHOT.0, SNAPSHOT.1, SNAPSHOT.2).expect("valid date");
    let month = NaiveDate::from_ymd_opt(SNAPSHOT.0, SNAPSHOT.1, 1).expect("valid date");
    let signup = |s: &Subscriber| snapshot.checked_sub_days(Days::new(u64::from(s.account_days))).unwrap_or(snapshot);
    let n = subs.len();
    let churn_day = days(snapshot.succ_opt().expect("valid date"));
    let customers = DataFrame::new_infer_height(vec![
        Column::new(c::CUSTOMER_ID.into(), subs.iter().map(|s| s.id).collect::<Vec<i64>>()),
        date_column(c::SIGNUP_DATE, subs.iter().map(|s| Some(days(signup(s)))).collect())?,
        Column::new(c::MARKET_ID.into(), subs.iter().map(|s| s.state.as_str()).collect::<Vec<&str>>()),
        Column::new(c::PLAN_TYPE.into(), vec!["postpaid"; n]),
        Column::new(c::CONTRACT_MONTHS.into(), vec![0i64; n]),
        date_column(c::CHURN_DATE, subs.iter().map(|s| s.churn.then_some(churn_day)).collect())?,
        Column::new(
            c::CHURN_REASON.into(),
            subs.iter().map(|s| s.churn.then_some("unknown")).collect::<Vec<Option<&str>>>(),
        ),
    ])?;
    // The bill of the snapshot's month, for customers who had signed up by then.
    let billed: Vec<&Subscriber> = subs.iter().filter(|s| signup(s) <= snapshot).collect();
    let billing = billing_frame(
        billed.iter().map(|s| s.id).collect(),
        vec![days(month); billed.len()],
        billed.iter().map(|s| s.charge).collect(),
        Some(billed.iter().map(|s| s.minutes).collect()),
    )?;
    let (mut i_id, mut i_ts) = (vec![], vec![]);
    for s in subs {
        for k in 0..s.care_calls {
            i_id.push(s.id);
            // spread over the month's days, never before signup
            let day = month.checked_add_days(Days::new(u64::from(k % 28))).unwrap_or(month).max(signup(s));
            i_ts.push(Some(days(day)));
        }
    }
    let k = i_id.len();
    let interactions = DataFrame::new_infer_height(vec![
        Column::new(c::CUSTOMER_ID.into(), i_id),
        date_column(c::TS, i_ts)?,
        Column::new(c::CHANNEL.into(), vec!["call"; k]),
        Column::new(c::KIND.into(), vec!["inquiry"; k]),
        Column::full_null(c::RESOLVED.into(), k, &DataType::Boolean),
    ])?;
    let (mut s_id, mut s_name, mut s_start) = (vec![], vec![], vec![]);
    for s in subs {
        for (held, name) in [(s.international, "international"), (s.voice_mail, "voice_mail")] {
            if held {
                s_id.push(s.id);
                s_name.push(name);
                s_start.push(Some(days(signup(s))));
            }
        }
    }
    let j = s_id.len();
    let services = DataFrame::new_infer_height(vec![
        Column::new(c::CUSTOMER_ID.into(), s_id),
        Column::new(c::SERVICE.into(), s_name),
        date_column(c::START_DATE, s_start)?,
        Column::full_null(c::END_DATE.into(), j, &DataType::Date),
    ])?;
    let catalog = DataFrame::new_infer_height(vec![
        Column::new(c::SERVICE.into(), vec!["international", "voice_mail"]),
        Column::new(c::MONTHLY_PRICE.into(), vec![0.0, 0.0]),
        Column::new(c::MONTHLY_MARGIN.into(), vec![0.0, 0.0]),
    ])?;
    Ok(vec![
        ("customers", customers),
        ("billing", billing),
        ("interactions", interactions),
        ("services", services),
        ("service_catalog", catalog),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = "1,KS,128,area_code_415,no,yes,25,265.1,110,45.07,197.4,99,16.78,244.7,91,11.01,10.0,3,2.7,1,no";

    #[test]
    fn parses_the_published_layout() {
        let text = format!("{}\n{ROW}\n", HEADER.join(","));
        let s = parse(text.as_bytes(), Path::new("mlc.csv")).unwrap();
        assert_eq!((s[0].id, s[0].account_days, s[0].care_calls, s[0].voice_mail), (1, 128, 1, true));
        assert!((s[0].charge - (45.07 + 16.78 + 11.01 + 2.7)).abs() < 1e-9);
        assert!((s[0].minutes - (265.1 + 197.4 + 244.7 + 10.0)).abs() < 1e-9);
        let t = tables(&s).unwrap();
        assert_eq!(t[2].1.height(), 1); // one care call
    }

    #[test]
    fn malformed_lines_name_line_and_field() {
        for (bad, field) in [
            (ROW.replace(",no,yes,", ",maybe,yes,"), "international_plan"),
            (ROW.replace(",265.1,", ",-1,"), "total_day_minutes"),
            (ROW.replace(",128,", ",x,"), "account_length"),
            (ROW.replace(",1,no", ",1,no,extra"), "line"),
        ] {
            let text = format!("{}\n{ROW}\n{bad}\n", HEADER.join(","));
            let e = parse(text.as_bytes(), Path::new("mlc.csv")).unwrap_err();
            assert_eq!((e.line, e.field.as_str()), (3, field), "{e}");
        }
    }
}
