//! Text columns of few values held as their numbers: an enum of the values, one byte
//! a row where text costs a 16-byte view (at 10M customers, 0.15 GB a column), or a
//! categorical column (four bytes a row, each distinct text once) where the values
//! are not known in advance. The run computes on them as on text (comparisons with
//! text literals, group-bys; [`strs`] reads their values in place); [`as_text`] turns
//! them back before a table is joined with text or written, so every output is text.

use polars::prelude::*;

/// The type of a text column that takes one of `values` (or none), in that order.
pub fn labels(values: &[&str]) -> DataType {
    let categories = FrozenCategories::new(values.iter().copied()).expect("the values of a label column are distinct");
    DataType::from_frozen_categories(categories)
}

/// `value` as a literal of the label type `dtype`.
pub fn label(value: &str, dtype: &DataType) -> Expr {
    lit(value).cast(dtype.clone())
}

/// The type of a text column of many values that repeat (a customer's churn reasons):
/// each row the number of its value, each value's text stored once.
pub fn texts() -> DataType {
    DataType::from_categories(Categories::global())
}

/// Whether `dtype` holds text as numbers (an enum or a categorical).
pub fn is_label(dtype: &DataType) -> bool {
    dtype.is_enum() || dtype.is_categorical()
}

/// The values of a text column, whether it holds text, labels or categorical text,
/// read where they are (a cast to text would copy the column).
pub fn strs(column: &Column) -> PolarsResult<Box<dyn Iterator<Item = Option<&str>> + '_>> {
    Ok(match column.dtype() {
        DataType::String => Box::new(column.str()?.iter()),
        dtype => match dtype.cat_physical()? {
            CategoricalPhysical::U8 => Box::new(column.cat8()?.iter_str()),
            CategoricalPhysical::U16 => Box::new(column.cat16()?.iter_str()),
            CategoricalPhysical::U32 => Box::new(column.cat32()?.iter_str()),
        },
    })
}

/// `df` with its label columns as text; the frame itself when it has none.
pub fn as_text(df: DataFrame) -> PolarsResult<DataFrame> {
    let labels: Vec<Expr> = df
        .columns()
        .iter()
        .filter(|c| is_label(c.dtype()))
        .map(|c| col(c.name().clone()).cast(DataType::String))
        .collect();
    if labels.is_empty() { Ok(df) } else { df.lazy().with_columns(labels).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_compare_with_text_and_come_back_as_text() {
        let tiers = labels(&["gold", "iron"]);
        let df = df!("x" => [1, 2, 3]).unwrap();
        let df = df
            .lazy()
            .with_column(
                when(col("x").lt(lit(2)))
                    .then(label("gold", &tiers))
                    .when(col("x").lt(lit(3)))
                    .then(label("iron", &tiers))
                    .otherwise(lit(NULL).cast(tiers.clone()))
                    .alias("tier"),
            )
            .with_column(col("tier").eq(lit("iron")).alias("is_iron"))
            .collect()
            .unwrap();
        assert!(is_label(df.column("tier").unwrap().dtype()));
        let is_iron: Vec<Option<bool>> = df.column("is_iron").unwrap().bool().unwrap().iter().collect();
        assert_eq!(is_iron, [Some(false), Some(true), None]);
        let read: Vec<Option<&str>> = strs(df.column("tier").unwrap()).unwrap().collect();
        assert_eq!(read, [Some("gold"), Some("iron"), None]);
        let text = as_text(df).unwrap();
        let tier: Vec<Option<&str>> = text.column("tier").unwrap().str().unwrap().iter().collect();
        assert_eq!(tier, [Some("gold"), Some("iron"), None]);
    }
}
