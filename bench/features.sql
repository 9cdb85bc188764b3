-- The per-customer aggregate stage of `loyalty features --stage aggregates`, in DuckDB SQL.
-- Placeholders: {data} dataset folder, {as_of} T, {lkbm} last bill month known at T,
-- {t12} T minus 12 months, {margin_rate}, {billing} the billing glob, {hive} true/false.
-- Same definitions as crates/loyalty-features/src/per_customer.rs: windows are the 3, 6
-- and 12 calendar months ending with the last month whose bill is known at T.
COPY (
WITH known AS (
    SELECT * FROM read_parquet('{billing}', hive_partitioning = {hive}, union_by_name = true)
    WHERE bill_month <= DATE '{lkbm}'
),
p1 AS (
    SELECT customer_id,
           max(bill_month) AS last_bill_month,
           count(*) AS months_billed,
           max(bill_month) FILTER (WHERE bill_month > DATE '{lkbm}' - INTERVAL 12 MONTH
               AND coalesce(voice_minutes, 0) + coalesce(data_mb, 0) + coalesce(sms_count, 0) + total_charge > 0) AS last_active_bill
    FROM known GROUP BY customer_id
),
j AS (
    SELECT k.*, (year(DATE '{lkbm}') * 12 + month(DATE '{lkbm}')) - (year(k.bill_month) * 12 + month(k.bill_month)) AS kk
    FROM known k WHERE k.bill_month > DATE '{lkbm}' - INTERVAL 12 MONTH
),
p2 AS (
    SELECT customer_id,
        avg(total_charge) FILTER (WHERE kk < 3) AS arpu_3m,
        avg(total_charge) FILTER (WHERE kk < 12) AS arpu_12m,
        avg(coalesce(total_charge - cost, total_charge * {margin_rate})) FILTER (WHERE kk < 3) AS margin_monthly,
        avg(data_mb) FILTER (WHERE kk < 3) AS data_mb_3m,
        regr_slope(total_charge, -kk) FILTER (WHERE kk < 6) AS charge_trend_per_month,
        stddev_pop(total_charge) FILTER (WHERE kk < 12) / nullif(avg(total_charge) FILTER (WHERE kk < 12), 0) AS charge_volatility_cv,
        sum(coalesce(discount, 0)) FILTER (WHERE kk < 12) / nullif(sum(total_charge + coalesce(discount, 0)) FILTER (WHERE kk < 12), 0) AS discount_share_12m,
        regr_slope(voice_minutes, -kk) FILTER (WHERE kk < 6) AS voice_trend_min_per_month,
        regr_slope(data_mb, -kk) FILTER (WHERE kk < 6) AS data_trend_mb_per_month,
        avg(CASE WHEN days_late > 0 OR (days_late IS NULL AND amount_paid < total_charge) THEN 1.0 ELSE 0.0 END) FILTER (WHERE kk < 12) AS late_payment_rate_12m,
        max(days_late) FILTER (WHERE kk < 12)::DOUBLE AS max_days_late_12m,
        coalesce(sum(greatest(total_charge - amount_paid, 0)) FILTER (WHERE kk < 12 AND amount_paid IS NOT NULL), 0) AS unpaid_amount_12m,
        regr_slope(days_late, -kk) FILTER (WHERE kk < 6) AS days_late_trend_per_month
    FROM j GROUP BY customer_id
),
tp AS (
    SELECT customer_id,
        count(*) FILTER (WHERE ts::DATE > DATE '{t12}')::DOUBLE AS topups_12m,
        coalesce(sum(amount) FILTER (WHERE ts::DATE > DATE '{t12}'), 0) AS topup_amount_12m,
        max(ts::DATE) AS last_topup
    FROM read_parquet('{data}/topups.parquet') WHERE ts::DATE <= DATE '{as_of}' AND ts::DATE > DATE '{t12}' GROUP BY customer_id
),
ia AS (
    SELECT customer_id,
        count(*) FILTER (WHERE kind = 'complaint')::DOUBLE AS complaints_12m,
        count(*)::DOUBLE AS contacts_12m,
        count(*) FILTER (WHERE resolved = false)::DOUBLE AS unresolved_12m,
        count(DISTINCT channel)::DOUBLE AS channels_used_12m
    FROM read_parquet('{data}/interactions.parquet')
    WHERE ts::DATE <= DATE '{as_of}' AND ts::DATE > DATE '{t12}' GROUP BY customer_id
),
sv AS (
    SELECT customer_id,
        count(*)::DOUBLE AS surveys_answered,
        (DATE '{as_of}' - max(survey_date))::DOUBLE AS survey_age_days,
        arg_max_null(overall, survey_date)::DOUBLE AS survey_overall,
        arg_max_null(recommend, survey_date)::DOUBLE AS survey_recommend
    FROM read_parquet('{data}/surveys.parquet') WHERE survey_date <= DATE '{as_of}' GROUP BY customer_id
),
rf AS (
    SELECT customer_id, count(*)::DOUBLE AS referrals_made, count(*) FILTER (WHERE referral_date > DATE '{t12}')::DOUBLE AS referrals_12m
    FROM read_parquet('{data}/referrals.parquet') WHERE referral_date <= DATE '{as_of}' GROUP BY customer_id
),
sh AS (
    SELECT s.customer_id, count(DISTINCT s.service)::DOUBLE AS services_held, sum(c.monthly_margin) AS services_margin_monthly
    FROM read_parquet('{data}/services.parquet') s LEFT JOIN read_parquet('{data}/service_catalog.parquet') c USING (service)
    WHERE s.start_date <= DATE '{as_of}' AND (s.end_date IS NULL OR s.end_date > DATE '{as_of}') GROUP BY s.customer_id
),
base AS (
    SELECT c.customer_id, c.plan_type, c.churn_date,
        (year(DATE '{as_of}') * 12 + month(DATE '{as_of}')) - (year(c.signup_date) * 12 + month(c.signup_date))
            - CASE WHEN day(c.signup_date) > day(DATE '{as_of}') THEN 1 ELSE 0 END AS tenure_months,
        c.signup_date
    FROM read_parquet('{data}/customers.parquet') c WHERE c.signup_date <= DATE '{as_of}'
)
SELECT b.customer_id, b.tenure_months, coalesce(p1.months_billed, 0) AS months_billed,
    p2.arpu_3m, p2.arpu_12m, p2.margin_monthly, p2.data_mb_3m, p2.charge_trend_per_month, p2.charge_volatility_cv,
    p2.discount_share_12m, p2.voice_trend_min_per_month, p2.data_trend_mb_per_month, p2.late_payment_rate_12m,
    p2.max_days_late_12m, coalesce(p2.unpaid_amount_12m, 0) AS unpaid_amount_12m, p2.days_late_trend_per_month,
    coalesce(tp.topups_12m, 0) AS topups_12m, coalesce(tp.topup_amount_12m, 0) AS topup_amount_12m,
    coalesce(ia.complaints_12m, 0) AS complaints_12m, coalesce(ia.contacts_12m, 0) AS contacts_12m,
    coalesce(ia.unresolved_12m, 0) AS unresolved_12m, coalesce(ia.channels_used_12m, 0) AS channels_used_12m,
    coalesce(sv.surveys_answered, 0) AS surveys_answered, sv.survey_age_days, sv.survey_overall, sv.survey_recommend,
    coalesce(rf.referrals_made, 0) AS referrals_made, coalesce(rf.referrals_12m, 0) AS referrals_12m,
    coalesce(sh.services_held, 0) AS services_held, coalesce(sh.services_margin_monthly, 0) AS services_margin_monthly,
    (DATE '{as_of}' - coalesce(greatest(CASE WHEN p1.last_active_bill IS NOT NULL THEN least(last_day(p1.last_active_bill), DATE '{as_of}') END, tp.last_topup), greatest(b.signup_date, DATE '{t12}')))::DOUBLE AS recency_days
FROM base b
LEFT JOIN p1 USING (customer_id) LEFT JOIN p2 USING (customer_id) LEFT JOIN tp USING (customer_id)
LEFT JOIN ia USING (customer_id) LEFT JOIN sv USING (customer_id) LEFT JOIN rf USING (customer_id) LEFT JOIN sh USING (customer_id)
WHERE (b.churn_date IS NULL OR b.churn_date > DATE '{as_of}')
  AND (b.plan_type <> 'prepaid'
       OR (DATE '{as_of}' - coalesce(greatest(CASE WHEN p1.last_active_bill IS NOT NULL THEN least(last_day(p1.last_active_bill), DATE '{as_of}') END, tp.last_topup), greatest(b.signup_date, DATE '{t12}'))) <= {inactivity_days})
ORDER BY b.customer_id
) TO '{out}' (FORMAT parquet);
