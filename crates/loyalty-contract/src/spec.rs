//! The tables and columns of SCHEMA.md, as data.

use std::fmt;

use serde::Serialize;

/// Column names, defined once and used everywhere.
pub mod col {
    pub const CUSTOMER_ID: &str = "customer_id";
    pub const SIGNUP_DATE: &str = "signup_date";
    pub const MARKET_ID: &str = "market_id";
    pub const PLAN_TYPE: &str = "plan_type";
    pub const CONTRACT_MONTHS: &str = "contract_months";
    pub const CHURN_DATE: &str = "churn_date";
    pub const CHURN_REASON: &str = "churn_reason";

    pub const BILL_MONTH: &str = "bill_month";
    pub const TOTAL_CHARGE: &str = "total_charge";
    pub const COST: &str = "cost";
    pub const VOICE_MINUTES: &str = "voice_minutes";
    pub const DATA_MB: &str = "data_mb";
    pub const SMS_COUNT: &str = "sms_count";
    pub const DISCOUNT: &str = "discount";
    pub const AMOUNT_PAID: &str = "amount_paid";
    pub const DAYS_LATE: &str = "days_late";

    pub const COMPETITORS: &str = "competitors";
    pub const COMPETITION_INDEX: &str = "competition_index";

    pub const SERVICE: &str = "service";
    pub const MONTHLY_PRICE: &str = "monthly_price";
    pub const MONTHLY_MARGIN: &str = "monthly_margin";
    pub const START_DATE: &str = "start_date";
    pub const END_DATE: &str = "end_date";

    pub const TS: &str = "ts";
    pub const AMOUNT: &str = "amount";

    pub const CHANNEL: &str = "channel";
    pub const KIND: &str = "kind";
    pub const RESOLVED: &str = "resolved";

    pub const SURVEY_DATE: &str = "survey_date";
    pub const OVERALL: &str = "overall";
    pub const PRODUCT: &str = "product";
    pub const SERVICE_ASPECT: &str = "service";
    pub const RELATIONSHIP: &str = "relationship";
    pub const PRICE: &str = "price";
    pub const CONVENIENCE: &str = "convenience";
    pub const BRAND: &str = "brand";
    pub const RECOMMEND: &str = "recommend";

    pub const REFERRED_ID: &str = "referred_id";
    pub const REFERRAL_DATE: &str = "referral_date";

    /// The six survey aspects, in SCHEMA.md order.
    pub const ASPECTS: [&str; 6] = [PRODUCT, SERVICE_ASPECT, RELATIONSHIP, PRICE, CONVENIENCE, BRAND];

    /// Added by the reader: the Parquet file a row came from.
    pub const SOURCE_FILE: &str = "source_file";
}

/// The plan types the contract allows.
pub const PLAN_TYPES: [&str; 2] = ["prepaid", "postpaid"];

/// A table of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Markets,
    ServiceCatalog,
    Customers,
    Billing,
    Services,
    Topups,
    Interactions,
    Surveys,
    Referrals,
}

impl Table {
    /// Every table, parents before children (the order validation runs in).
    pub const ALL: [Table; 9] = [
        Table::Markets,
        Table::ServiceCatalog,
        Table::Customers,
        Table::Billing,
        Table::Services,
        Table::Topups,
        Table::Interactions,
        Table::Surveys,
        Table::Referrals,
    ];

    /// The table's name: `<name>.parquet` or `<name>/` in a dataset folder.
    pub fn name(self) -> &'static str {
        match self {
            Table::Markets => "markets",
            Table::ServiceCatalog => "service_catalog",
            Table::Customers => "customers",
            Table::Billing => "billing",
            Table::Services => "services",
            Table::Topups => "topups",
            Table::Interactions => "interactions",
            Table::Surveys => "surveys",
            Table::Referrals => "referrals",
        }
    }

    pub fn required(self) -> bool {
        matches!(self, Table::Customers | Table::Billing)
    }

    pub fn spec(self) -> &'static TableSpec {
        match self {
            Table::Markets => &MARKETS,
            Table::ServiceCatalog => &SERVICE_CATALOG,
            Table::Customers => &CUSTOMERS,
            Table::Billing => &BILLING,
            Table::Services => &SERVICES,
            Table::Topups => &TOPUPS,
            Table::Interactions => &INTERACTIONS,
            Table::Surveys => &SURVEYS,
            Table::Referrals => &REFERRALS,
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The logical type of a contract column and what physical types coerce to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Any integer width; read as Int64.
    Int,
    /// Float32 or Float64 (integers are widened); read as Float64.
    Float,
    /// Parquet DATE or a timestamp (date part); read as Date.
    Date,
    /// Parquet DATE or a timestamp; read as Datetime(us).
    Timestamp,
    /// Text (String or Categorical); read as String.
    Utf8,
    /// Boolean.
    Bool,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Int => "integer",
            Kind::Float => "float",
            Kind::Date => "date",
            Kind::Timestamp => "datetime or date",
            Kind::Utf8 => "string",
            Kind::Bool => "boolean",
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub kind: Kind,
    /// Nullable columns may also be absent from the files (read as all-null).
    pub nullable: bool,
}

const fn c(name: &'static str, kind: Kind, nullable: bool) -> ColumnSpec {
    ColumnSpec { name, kind, nullable }
}

#[derive(Debug)]
pub struct TableSpec {
    pub table: Table,
    pub columns: &'static [ColumnSpec],
    /// Columns that identify a row; unique where `unique_key` is set.
    pub key: &'static [&'static str],
    pub unique_key: bool,
}

impl TableSpec {
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }
}

use Kind::*;
use col::*;

pub static CUSTOMERS: TableSpec = TableSpec {
    table: Table::Customers,
    columns: &[
        c(CUSTOMER_ID, Int, false),
        c(SIGNUP_DATE, Date, false),
        c(MARKET_ID, Utf8, false),
        c(PLAN_TYPE, Utf8, false),
        c(CONTRACT_MONTHS, Int, true),
        c(CHURN_DATE, Date, true),
        c(CHURN_REASON, Utf8, true),
    ],
    key: &[CUSTOMER_ID],
    unique_key: true,
};

pub static BILLING: TableSpec = TableSpec {
    table: Table::Billing,
    columns: &[
        c(CUSTOMER_ID, Int, false),
        c(BILL_MONTH, Date, false),
        c(TOTAL_CHARGE, Float, false),
        c(COST, Float, true),
        c(VOICE_MINUTES, Float, true),
        c(DATA_MB, Float, true),
        c(SMS_COUNT, Int, true),
        c(DISCOUNT, Float, true),
        c(AMOUNT_PAID, Float, true),
        c(DAYS_LATE, Int, true),
    ],
    key: &[CUSTOMER_ID, BILL_MONTH],
    unique_key: true,
};

pub static MARKETS: TableSpec = TableSpec {
    table: Table::Markets,
    columns: &[c(MARKET_ID, Utf8, false), c(COMPETITORS, Int, true), c(COMPETITION_INDEX, Float, true)],
    key: &[MARKET_ID],
    unique_key: true,
};

pub static SERVICE_CATALOG: TableSpec = TableSpec {
    table: Table::ServiceCatalog,
    columns: &[c(SERVICE, Utf8, false), c(MONTHLY_PRICE, Float, false), c(MONTHLY_MARGIN, Float, false)],
    key: &[SERVICE],
    unique_key: true,
};

pub static SERVICES: TableSpec = TableSpec {
    table: Table::Services,
    columns: &[
        c(CUSTOMER_ID, Int, false),
        c(SERVICE, Utf8, false),
        c(START_DATE, Date, false),
        c(END_DATE, Date, true),
    ],
    key: &[CUSTOMER_ID, SERVICE, START_DATE],
    unique_key: true,
};

pub static TOPUPS: TableSpec = TableSpec {
    table: Table::Topups,
    columns: &[c(CUSTOMER_ID, Int, false), c(TS, Timestamp, false), c(AMOUNT, Float, false)],
    key: &[CUSTOMER_ID, TS],
    unique_key: false,
};

pub static INTERACTIONS: TableSpec = TableSpec {
    table: Table::Interactions,
    columns: &[
        c(CUSTOMER_ID, Int, false),
        c(TS, Timestamp, false),
        c(CHANNEL, Utf8, false),
        c(KIND, Utf8, false),
        c(RESOLVED, Bool, true),
    ],
    key: &[CUSTOMER_ID, TS],
    unique_key: false,
};

pub static SURVEYS: TableSpec = TableSpec {
    table: Table::Surveys,
    columns: &[
        c(CUSTOMER_ID, Int, false),
        c(SURVEY_DATE, Date, false),
        c(OVERALL, Int, false),
        c(PRODUCT, Int, true),
        c(SERVICE_ASPECT, Int, true),
        c(RELATIONSHIP, Int, true),
        c(PRICE, Int, true),
        c(CONVENIENCE, Int, true),
        c(BRAND, Int, true),
        c(RECOMMEND, Int, true),
    ],
    key: &[CUSTOMER_ID, SURVEY_DATE],
    unique_key: false,
};

pub static REFERRALS: TableSpec = TableSpec {
    table: Table::Referrals,
    columns: &[c(CUSTOMER_ID, Int, false), c(REFERRED_ID, Int, false), c(REFERRAL_DATE, Date, false)],
    key: &[CUSTOMER_ID, REFERRED_ID],
    unique_key: false,
};
