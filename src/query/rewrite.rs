//! Window calls in SQL. Pipelines write their window in `GROUP BY` —
//! `tumble(INTERVAL '1 hour')`, `hop(INTERVAL '10 minutes', INTERVAL '1 hour')`,
//! `session(INTERVAL '30 minutes')`, and by the calendar `tumble(INTERVAL '1 month')`
//! (or a quarter, a year) and `cumulate(INTERVAL '1 day', INTERVAL '1 year')`
//! (running totals from the start of each period, one step more each time, as
//! Flink's CUMULATE). This module finds those calls in the parsed
//! statement, reads the window from them, and replaces each by the two columns
//! `window_start, window_end` that every feed table carries, so the rest is plain
//! SQL for DataFusion.

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, Query,
    SetExpr, Spanned, TableFactor, Value, visit_expressions,
};
use datafusion::sql::sqlparser::tokenizer::Span;
use std::ops::ControlFlow;

use crate::core::time::{Millis, parse_duration};

/// The window a pipeline's aggregates run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// Fixed, non-overlapping windows of `width`.
    Tumble { width: Millis },
    /// Windows of `width` starting every `slide`; `width` is a multiple of `slide`.
    Hop { slide: Millis, width: Millis },
    /// Per key: events closer than `gap` share a window.
    Session { gap: Millis },
    /// Calendar periods of `months` (1 a month, 3 a quarter, 12 a year) in the
    /// pipeline's timezone.
    Calendar { months: u32 },
    /// Windows from the start of each `period`, ending at every `step`: the
    /// running totals of the period (Flink's CUMULATE).
    Cumulate { step: Millis, period: Period },
}

/// How long a cumulating window's period is: fixed, or calendar months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Fixed(Millis),
    Months(u32),
}

/// A calendar month's nominal length, where a length must be given for one.
const NOMINAL_MONTH: Millis = 30 * crate::core::time::DAY;

impl WindowSpec {
    /// How far apart window starts are (the bin width).
    pub fn slide(&self) -> Millis {
        match *self {
            WindowSpec::Tumble { width } => width,
            WindowSpec::Hop { slide, .. } => slide,
            WindowSpec::Session { gap } => gap,
            WindowSpec::Calendar { months } => months as Millis * NOMINAL_MONTH,
            WindowSpec::Cumulate { step, .. } => step,
        }
    }

    pub fn width(&self) -> Millis {
        match *self {
            WindowSpec::Tumble { width } | WindowSpec::Hop { width, .. } => width,
            WindowSpec::Session { gap } => gap,
            WindowSpec::Calendar { months }
            | WindowSpec::Cumulate {
                period: Period::Months(months),
                ..
            } => months as Millis * NOMINAL_MONTH,
            WindowSpec::Cumulate {
                period: Period::Fixed(width),
                ..
            } => width,
        }
    }

    /// Windows that follow the calendar or grow through a period: their values
    /// are not a regular series a baseline can judge.
    pub fn is_irregular(&self) -> bool {
        matches!(
            self,
            WindowSpec::Calendar { .. } | WindowSpec::Cumulate { .. }
        )
    }
}

fn months_text(months: u32) -> String {
    match months {
        12 => "1 year".into(),
        m if m % 12 == 0 => format!("{} years", m / 12),
        1 => "1 month".into(),
        m => format!("{m} months"),
    }
}

impl std::fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::core::time::format_duration as d;
        match *self {
            WindowSpec::Tumble { width } => write!(f, "tumble {}", d(width)),
            WindowSpec::Hop { slide, width } => write!(f, "hop {} every {}", d(width), d(slide)),
            WindowSpec::Session { gap } => write!(f, "session gap {}", d(gap)),
            WindowSpec::Calendar { months } => write!(f, "tumble {}", months_text(months)),
            WindowSpec::Cumulate { step, period } => {
                let period = match period {
                    Period::Fixed(w) => d(w),
                    Period::Months(m) => months_text(m),
                };
                write!(f, "cumulate {period} every {}", d(step))
            }
        }
    }
}

/// A mistake in the SQL, at a 1-based line and column of the SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

const WINDOW_FUNCTIONS: [&str; 4] = ["tumble", "hop", "session", "cumulate"];

fn function_name(f: &ast::Function) -> Option<String> {
    match f.name.0.as_slice() {
        [ast::ObjectNamePart::Identifier(id)] => Some(id.value.to_ascii_lowercase()),
        _ => None,
    }
}

fn err_at(span: Span, message: impl Into<String>) -> SqlError {
    SqlError {
        line: span.start.line as usize,
        col: span.start.column as usize,
        message: message.into(),
    }
}

/// Replaces the window calls of every `GROUP BY` in the query and returns the window.
pub fn rewrite_windows(query: &mut Query) -> Result<WindowSpec, Vec<SqlError>> {
    let mut found: Vec<(WindowSpec, Span)> = Vec::new();
    let mut errors = Vec::new();
    walk_query(query, &mut found, &mut errors);
    // Any window call left over is outside a GROUP BY.
    let _ = visit_expressions(query, |e: &Expr| {
        if let Expr::Function(f) = e
            && let Some(name) = function_name(f)
            && WINDOW_FUNCTIONS.contains(&name.as_str())
        {
            errors.push(err_at(
                e.span(),
                format!(
                    "`{name}(...)` belongs in GROUP BY; select `window_start` and `window_end` instead"
                ),
            ));
        }
        ControlFlow::<()>::Continue(())
    });
    if found.is_empty() && errors.is_empty() {
        errors.push(SqlError {
            line: 1,
            col: 1,
            message: "no window: group by `tumble(INTERVAL ...)`, `hop(INTERVAL ..., INTERVAL ...)` or `session(INTERVAL ...)`".into(),
        });
    }
    if let Some((first, _)) = found.first() {
        for (spec, span) in &found[1..] {
            if spec != first {
                errors.push(err_at(
                    *span,
                    format!("every windowed aggregate of a pipeline must use the same window; the first is {first:?}"),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(found[0].0)
    } else {
        Err(errors)
    }
}

fn walk_query(q: &mut Query, found: &mut Vec<(WindowSpec, Span)>, errors: &mut Vec<SqlError>) {
    if let Some(with) = &mut q.with {
        for cte in &mut with.cte_tables {
            walk_query(&mut cte.query, found, errors);
        }
    }
    walk_set_expr(&mut q.body, found, errors);
}

fn walk_set_expr(s: &mut SetExpr, found: &mut Vec<(WindowSpec, Span)>, errors: &mut Vec<SqlError>) {
    match s {
        SetExpr::Select(select) => {
            for t in &mut select.from {
                walk_table_factor(&mut t.relation, found, errors);
                for j in &mut t.joins {
                    walk_table_factor(&mut j.relation, found, errors);
                }
            }
            if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
                let mut rewritten = Vec::with_capacity(exprs.len() + 1);
                let mut windows_here = 0;
                for e in exprs.drain(..) {
                    match window_call(&e) {
                        Some(Ok(spec)) => {
                            windows_here += 1;
                            if windows_here > 1 {
                                errors.push(err_at(e.span(), "only one window per GROUP BY"));
                            }
                            found.push((spec, e.span()));
                            rewritten.push(Expr::Identifier(Ident::new("window_start")));
                            rewritten.push(Expr::Identifier(Ident::new("window_end")));
                        }
                        Some(Err(err)) => {
                            // Reported once; the columns stand in so planning goes on.
                            errors.push(err);
                            rewritten.push(Expr::Identifier(Ident::new("window_start")));
                            rewritten.push(Expr::Identifier(Ident::new("window_end")));
                        }
                        None => rewritten.push(e),
                    }
                }
                *exprs = rewritten;
            }
        }
        SetExpr::Query(q) => walk_query(q, found, errors),
        SetExpr::SetOperation { left, right, .. } => {
            walk_set_expr(left, found, errors);
            walk_set_expr(right, found, errors);
        }
        _ => {}
    }
}

fn walk_table_factor(
    t: &mut TableFactor,
    found: &mut Vec<(WindowSpec, Span)>,
    errors: &mut Vec<SqlError>,
) {
    match t {
        TableFactor::Derived { subquery, .. } => walk_query(subquery, found, errors),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            walk_table_factor(&mut table_with_joins.relation, found, errors);
            for j in &mut table_with_joins.joins {
                walk_table_factor(&mut j.relation, found, errors);
            }
        }
        _ => {}
    }
}

/// `Some` when `e` is a window call: the window, or what is wrong with the call.
fn window_call(e: &Expr) -> Option<Result<WindowSpec, SqlError>> {
    let Expr::Function(f) = e else { return None };
    let name = function_name(f)?;
    if !WINDOW_FUNCTIONS.contains(&name.as_str()) {
        return None;
    }
    let span = e.span();
    let args: Vec<&Expr> = match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let want = if name == "hop" || name == "cumulate" {
        2
    } else {
        1
    };
    if args.len() != want {
        return Some(Err(err_at(
            span,
            match name.as_str() {
                "hop" => {
                    "hop takes two intervals: hop(INTERVAL 'slide', INTERVAL 'width')".to_string()
                }
                "cumulate" => "cumulate takes two intervals: cumulate(INTERVAL 'step', INTERVAL 'period'), e.g. cumulate(INTERVAL '1 day', INTERVAL '1 year')".to_string(),
                _ => format!("{name} takes one interval, e.g. {name}(INTERVAL '1 hour')"),
            },
        )));
    }
    let mut lengths = Vec::new();
    for a in args {
        match interval(a) {
            Ok(Period::Fixed(v)) if v <= 0 => {
                return Some(Err(err_at(a.span(), "a window interval must be positive")));
            }
            Ok(p) => lengths.push(p),
            Err(m) => return Some(Err(err_at(a.span(), m))),
        }
    }
    Some(window_of(&name, &lengths).map_err(|m| err_at(span, m)))
}

/// The window a call names, from its intervals.
fn window_of(name: &str, lengths: &[Period]) -> Result<WindowSpec, String> {
    use Period::{Fixed, Months};
    let calendar_only = |what: &str| {
        format!(
            "{what} takes a fixed interval; months and years are for tumble(INTERVAL '1 month') and cumulate(INTERVAL '1 day', INTERVAL '1 year')"
        )
    };
    match (name, lengths) {
        ("tumble", [Fixed(width)]) => Ok(WindowSpec::Tumble { width: *width }),
        ("tumble", [Months(months)]) => Ok(WindowSpec::Calendar { months: *months }),
        ("session", [Fixed(gap)]) => Ok(WindowSpec::Session { gap: *gap }),
        ("hop", [Fixed(slide), Fixed(width)]) => {
            if width % slide != 0 || width < slide {
                Err("hop width must be a whole multiple of its slide: hop(INTERVAL 'slide', INTERVAL 'width')".into())
            } else {
                Ok(WindowSpec::Hop {
                    slide: *slide,
                    width: *width,
                })
            }
        }
        ("cumulate", [Fixed(step), Fixed(width)]) if width % step == 0 && width > step => {
            Ok(WindowSpec::Cumulate {
                step: *step,
                period: Fixed(*width),
            })
        }
        ("cumulate", [Fixed(step), Months(months)]) if crate::core::time::DAY % step == 0 => {
            Ok(WindowSpec::Cumulate {
                step: *step,
                period: Months(*months),
            })
        }
        ("cumulate", [Fixed(_), _]) => Err(
            "a cumulate step must divide its period (and a day, for a calendar period): cumulate(INTERVAL '1 day', INTERVAL '1 month')".into(),
        ),
        (name, _) => Err(calendar_only(name)),
    }
}

fn interval(e: &Expr) -> Result<Period, String> {
    let Expr::Interval(iv) = e else {
        return Err("expected an interval literal such as INTERVAL '10 minutes'".into());
    };
    let text = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            _ => return Err("expected an interval literal such as INTERVAL '10 minutes'".into()),
        },
        _ => return Err("expected an interval literal such as INTERVAL '10 minutes'".into()),
    };
    let text = match &iv.leading_field {
        Some(unit) => format!("{text} {unit}"),
        None => text,
    };
    if let Some(months) = crate::core::calendar::parse_months(&text) {
        return months.map(Period::Months);
    }
    parse_duration(&text)
        .map(Period::Fixed)
        .map_err(|m| format!("bad interval: {m}"))
}

/// Parses one query and rewrites its window calls: the window, and the SQL
/// DataFusion plans. For tests and tools; the planner works on the statement.
pub fn rewrite_sql(sql: &str) -> Result<(WindowSpec, String), Vec<SqlError>> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let parse_error = |message: String| {
        vec![SqlError {
            line: 1,
            col: 1,
            message,
        }]
    };
    let mut stmts = Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| parse_error(e.to_string()))?;
    let Some(ast::Statement::Query(q)) = stmts.first_mut() else {
        return Err(parse_error("expected one query".into()));
    };
    let window = rewrite_windows(q)?;
    Ok((window, q.to_string()))
}
