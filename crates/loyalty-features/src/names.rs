//! Output column names, with their units.

pub const TENURE_MONTHS: &str = "tenure_months";
pub const MONTHS_BILLED: &str = "months_billed";
pub const MONTHS_TO_CONTRACT_END: &str = "months_to_contract_end";
pub const COMPETITION_INDEX: &str = "competition_index";
pub const COMPETITION_LEVEL: &str = "competition_level";
/// The values of competition_level (held as a label, `loyalty_contract::labels`).
pub const COMPETITION_LEVELS: [&str; 4] = ["low", "medium", "high", "unknown"];

pub const LAST_BILL_MONTH: &str = "last_bill_month";
pub const RECENCY_DAYS: &str = "recency_days";
pub const TOPUPS_12M: &str = "topups_12m";
pub const TOPUPS_PER_MONTH: &str = "topups_per_month";
pub const TOPUP_AMOUNT_12M: &str = "topup_amount_12m";
pub const ARPU_3M: &str = "arpu_3m";
pub const ARPU_12M: &str = "arpu_12m";
/// Mean monthly margin of the last 3 bills, on the configured margin basis.
pub const MARGIN_MONTHLY: &str = "margin_monthly";
/// Mean monthly collected margin (amount_paid - cost) of the last 3 bills.
pub const MARGIN_COLLECTED_MONTHLY: &str = "margin_collected_monthly";
/// Billed and unpaid amounts of the last 3 bills (bad debt = unpaid / billed).
pub const CHARGE_3M: &str = "charge_3m";
pub const UNPAID_AMOUNT_3M: &str = "unpaid_amount_3m";
pub const CHARGE_TREND: &str = "charge_trend_per_month";
pub const CHARGE_VOLATILITY: &str = "charge_volatility_cv";
pub const DISCOUNT_SHARE_12M: &str = "discount_share_12m";
pub const VOICE_TREND: &str = "voice_trend_min_per_month";
pub const DATA_TREND: &str = "data_trend_mb_per_month";
pub const DATA_MB_3M: &str = "data_mb_3m";

pub const LATE_PAYMENT_RATE_12M: &str = "late_payment_rate_12m";
pub const MAX_DAYS_LATE_12M: &str = "max_days_late_12m";
pub const UNPAID_AMOUNT_12M: &str = "unpaid_amount_12m";
pub const DAYS_LATE_TREND: &str = "days_late_trend_per_month";

pub const COMPLAINTS_12M: &str = "complaints_12m";
pub const CONTACTS_12M: &str = "contacts_12m";
pub const UNRESOLVED_12M: &str = "unresolved_12m";
pub const CHANNELS_USED_12M: &str = "channels_used_12m";

pub const SURVEYS_ANSWERED: &str = "surveys_answered";
pub const SURVEY_AGE_DAYS: &str = "survey_age_days";
pub const SURVEY_OVERALL: &str = "survey_overall";
pub const SURVEY_RECOMMEND: &str = "survey_recommend";
/// `survey_<aspect>` for each aspect of the contract.
pub fn survey_aspect(aspect: &str) -> String {
    format!("survey_{aspect}")
}

pub const REFERRALS_MADE: &str = "referrals_made";
pub const REFERRALS_12M: &str = "referrals_12m";

pub const SERVICES_HELD: &str = "services_held";
pub const SERVICES_MARGIN_MONTHLY: &str = "services_margin_monthly";

pub const PREMIUM_PCT: &str = "premium_pct";
pub const ADVOCACY_SCORE: &str = "advocacy_score";
pub const ENGAGEMENT_SCORE: &str = "engagement_score";
pub const TRANSACTIONAL_LOYALTY: &str = "transactional_loyalty_score";
pub const EMOTIONAL_LOYALTY: &str = "emotional_loyalty_score";

pub const CPV_MONTHLY: &str = "cpv_monthly";
pub const CCV: &str = "ccv";
pub const CPV: &str = "cpv";
pub const CLV: &str = "clv";
/// `survival_<n>m`: the survival curve's value n months after T.
pub fn survival_at(months: u32) -> String {
    format!("survival_{months}m")
}

// The churn outputs of `loyalty run` (customers.parquet) and `loyalty churn train --out`.
/// P(still a customer h months after T): the churn model's, else the survival curve's.
pub const LOYALTY: &str = "loyalty";
/// Which model scored the customer: one of [`CHURN_MODELS`].
pub const CHURN_MODEL: &str = "churn_model";
pub const CHURN_MODELS: [&str; 3] = ["classifier", "bgnbd", "kaplan_meier"];
/// The customer's top churn reasons, joined by ", ".
pub const CHURN_REASONS: &str = "churn_reasons";
/// `p_churn_<h>m`: P(churned within h months of T) = 1 - loyalty.
pub fn p_churn(horizon_months: u32) -> String {
    format!("p_churn_{horizon_months}m")
}
