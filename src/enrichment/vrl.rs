//! Vector's two VRL functions over enrichment tables:
//! `get_enrichment_table_record` (exactly one row, else an error) and
//! `find_enrichment_table_records` (every matching row). As in Vector, the
//! table name and the condition's field names are fixed when the program
//! compiles (an unknown table or column is a config error), so the exact-match
//! fields get a hash index then; the values may come from the event.

use std::sync::Arc;

use vrl::compiler::prelude::*;

use super::{in_scope, Condition, Index, Table};

/// The two functions, for the compiler's function list.
pub fn functions() -> Vec<Box<dyn Function>> {
    vec![Box::new(Lookup { one: true }), Box::new(Lookup { one: false })]
}

const PARAMETERS: &[Parameter] = &[
    Parameter::required("table", kind::BYTES, "The enrichment table to search."),
    Parameter::required("condition", kind::OBJECT, "Column → value to match (or { from, to } timestamps for a date column)."),
    Parameter::optional("select", kind::ARRAY, "The columns to return (all when left out)."),
    Parameter::optional("case_sensitive", kind::BOOLEAN, "Whether text must match in case (default true)."),
    Parameter::optional("wildcard", kind::BYTES, "A cell value that matches any value of an exact-match column."),
];

#[derive(Debug, Clone, Copy)]
struct Lookup {
    /// `get_…_record` (one row) rather than `find_…_records` (all of them).
    one: bool,
}

impl Function for Lookup {
    fn identifier(&self) -> &'static str {
        if self.one {
            "get_enrichment_table_record"
        } else {
            "find_enrichment_table_records"
        }
    }

    fn usage(&self) -> &'static str {
        if self.one {
            "The one row of an enrichment table that matches the condition; an error when none or several do."
        } else {
            "Every row of an enrichment table that matches the condition."
        }
    }

    fn category(&self) -> &'static str {
        "Enrichment"
    }

    fn return_kind(&self) -> u16 {
        if self.one {
            kind::OBJECT
        } else {
            kind::ARRAY
        }
    }

    fn parameters(&self) -> &'static [Parameter] {
        PARAMETERS
    }

    fn examples(&self) -> &'static [Example] {
        &[]
    }

    fn compile(&self, state: &TypeState, _ctx: &mut FunctionCompileContext, arguments: ArgumentList) -> Compiled {
        let tables = in_scope();
        let names: Vec<Value> = tables.keys().map(|name| Value::from(name.as_str())).collect();
        let name = arguments.required_enum("table", &names, state)?.try_bytes_utf8_lossy().map(|n| n.into_owned()).unwrap_or_default();
        let table = tables.get(&name).cloned().ok_or_else(|| compile_error(format!("no enrichment table `{name}`")))?;
        let condition = arguments.required_object("condition")?;
        let case_sensitive = match arguments.optional_literal("case_sensitive", state)? {
            Some(value) => value.as_boolean().unwrap_or(true),
            None => true,
        };
        let mut fields = Vec::with_capacity(condition.len());
        let mut exact = Vec::new();
        for (column, value) in condition {
            let position = table.column(&column).ok_or_else(|| {
                compile_error(format!("enrichment table `{name}` has no column `{column}` (it has: {})", table.columns.join(", ")))
            })?;
            // A literal { from, to } object is a date range, not a value to match.
            let is_range = matches!(&value, expression::Expr::Container(expression::Container { variant: expression::Variant::Object(o) })
                if o.contains_key("from") || o.contains_key("to"));
            if !is_range {
                exact.push(column.to_string());
            }
            fields.push((position, value));
        }
        let exact: Vec<&str> = exact.iter().map(String::as_str).collect();
        let index = table.index(&exact, case_sensitive).map_err(compile_error)?;
        Ok(LookupFn {
            one: self.one,
            table,
            index: Arc::new(index),
            fields,
            select: arguments.optional("select"),
            wildcard: arguments.optional("wildcard"),
        }
        .as_expr())
    }
}

#[derive(Debug, Clone)]
struct LookupFn {
    one: bool,
    table: Arc<Table>,
    index: Arc<Index>,
    fields: Vec<(usize, expression::Expr)>,
    select: Option<Box<dyn Expression>>,
    wildcard: Option<Box<dyn Expression>>,
}

impl FunctionExpression for LookupFn {
    fn resolve(&self, ctx: &mut Context) -> Resolved {
        let mut conditions = Vec::with_capacity(self.fields.len());
        for (column, expr) in &self.fields {
            conditions.push((*column, condition(expr.resolve(ctx)?)?));
        }
        let select = match &self.select {
            Some(expr) => match expr.resolve(ctx)? {
                Value::Array(names) => Some(
                    names.iter().map(|n| Ok(n.try_bytes_utf8_lossy()?.into_owned())).collect::<Result<Vec<String>, ExpressionError>>()?,
                ),
                other => return Err(format!("`select` must be an array of column names, not {}", other.kind_str()).into()),
            },
            None => None,
        };
        let wildcard = self.wildcard.as_ref().map(|w| w.resolve(ctx)).transpose()?;
        let mut rows = self.table.find(&self.index, &conditions, wildcard.as_ref(), select.as_deref());
        if !self.one {
            return Ok(Value::Array(rows.into_iter().map(Value::Object).collect()));
        }
        match rows.len() {
            1 => Ok(Value::Object(rows.remove(0))),
            0 => Err("no rows found".into()),
            n => Err(format!("{n} rows found where one was expected").into()),
        }
    }

    fn type_def(&self, _: &TypeState) -> TypeDef {
        if self.one {
            TypeDef::object(Collection::any()).fallible()
        } else {
            TypeDef::array(Collection::from_unknown(Kind::object(Collection::any()))).fallible()
        }
    }
}

/// A condition's value: a `{from, to}` object of timestamps is a range, anything else is matched exactly.
fn condition(value: Value) -> Result<Condition, ExpressionError> {
    match value {
        Value::Object(map) if map.contains_key("from") || map.contains_key("to") => {
            let bound = |key: &str| match map.get(key) {
                None => Ok(None),
                Some(Value::Timestamp(t)) => Ok(Some(*t)),
                Some(_) => Err(ExpressionError::from(format!("`{key}` in a condition must be a timestamp"))),
            };
            Ok(Condition::Between { from: bound("from")?, to: bound("to")? })
        }
        value => Ok(Condition::Equals(value)),
    }
}

/// A compile-time error for the program's diagnostics.
fn compile_error(message: String) -> Box<dyn DiagnosticMessage> {
    Box::new(CompileError(message))
}

#[derive(Debug)]
struct CompileError(String);

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CompileError {}

impl DiagnosticMessage for CompileError {
    fn code(&self) -> usize {
        111
    }

    fn labels(&self) -> Vec<vrl::diagnostic::Label> {
        vec![vrl::diagnostic::Label::primary(self.0.clone(), Span::default())]
    }
}
