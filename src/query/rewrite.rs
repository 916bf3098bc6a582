//! Window calls in SQL. Pipelines write their window in `GROUP BY` —
//! `tumble(INTERVAL '1 hour')`, `hop(INTERVAL '10 minutes', INTERVAL '1 hour')`,
//! `session(INTERVAL '30 minutes')`. This module finds those calls in the parsed
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
}

impl WindowSpec {
    /// How far apart window starts are (the bin width).
    pub fn slide(&self) -> Millis {
        match *self {
            WindowSpec::Tumble { width } => width,
            WindowSpec::Hop { slide, .. } => slide,
            WindowSpec::Session { gap } => gap,
        }
    }

    pub fn width(&self) -> Millis {
        match *self {
            WindowSpec::Tumble { width } | WindowSpec::Hop { width, .. } => width,
            WindowSpec::Session { gap } => gap,
        }
    }
}

impl std::fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::core::time::format_duration as d;
        match *self {
            WindowSpec::Tumble { width } => write!(f, "tumble {}", d(width)),
            WindowSpec::Hop { slide, width } => write!(f, "hop {} every {}", d(width), d(slide)),
            WindowSpec::Session { gap } => write!(f, "session gap {}", d(gap)),
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

const WINDOW_FUNCTIONS: [&str; 3] = ["tumble", "hop", "session"];

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
    let want = if name == "hop" { 2 } else { 1 };
    if args.len() != want {
        return Some(Err(err_at(
            span,
            match name.as_str() {
                "hop" => {
                    "hop takes two intervals: hop(INTERVAL 'slide', INTERVAL 'width')".to_string()
                }
                _ => format!("{name} takes one interval, e.g. {name}(INTERVAL '1 hour')"),
            },
        )));
    }
    let mut ms = Vec::new();
    for a in args {
        match interval_millis(a) {
            Ok(v) if v > 0 => ms.push(v),
            Ok(_) => return Some(Err(err_at(a.span(), "a window interval must be positive"))),
            Err(m) => return Some(Err(err_at(a.span(), m))),
        }
    }
    Some(match name.as_str() {
        "tumble" => Ok(WindowSpec::Tumble { width: ms[0] }),
        "session" => Ok(WindowSpec::Session { gap: ms[0] }),
        _ => {
            let (slide, width) = (ms[0], ms[1]);
            if width % slide != 0 || width < slide {
                Err(err_at(
                    span,
                    "hop width must be a whole multiple of its slide: hop(INTERVAL 'slide', INTERVAL 'width')",
                ))
            } else {
                Ok(WindowSpec::Hop { slide, width })
            }
        }
    })
}

fn interval_millis(e: &Expr) -> Result<Millis, String> {
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
    parse_duration(&text).map_err(|m| format!("bad interval: {m}"))
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
