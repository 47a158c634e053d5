//! Rendering SQL results: aligned text tables, JSON and CSV.
//!
//! Input is one statement's result as the server's `/sql` route returns it
//! (`{"schema": {"elements": [{"name": {"some": N}, …}]}, "rows": [[…]]}`);
//! cells are the server's JSON values, shown as text: strings as they are,
//! everything else as compact JSON.

use serde_json::Value;

/// The output formats of `orrery sql`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Column names and rows of one statement's result.
pub(crate) struct ResultSet {
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<Value>>,
}

impl ResultSet {
    pub(crate) fn from_server(statement: &Value) -> ResultSet {
        let columns = statement["schema"]["elements"]
            .as_array()
            .map(|elements| {
                elements
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        e["name"]["some"]
                            .as_str()
                            .map_or_else(|| format!("column{i}"), str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rows = statement["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|row| row.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        ResultSet { columns, rows }
    }

    /// The result as text; `colour` makes a table's header row bold.
    pub(crate) fn render(&self, format: Format, colour: bool) -> String {
        match format {
            Format::Table => self.table(colour),
            Format::Json => self.json(),
            Format::Csv => self.csv(),
        }
    }

    fn table(&self, colour: bool) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(cell).collect())
            .collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for row in &cells {
            for (i, c) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let line = |values: &[String]| -> String {
            let padded: Vec<String> = values
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!(" {v:<w$} ", w = *w))
                .collect();
            padded.join("|").trim_end().to_owned()
        };
        let mut out = super::style::bold(colour, &line(&self.columns));
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        out.push_str(&rule.join("+"));
        out.push('\n');
        for row in &cells {
            out.push_str(&line(row));
            out.push('\n');
        }
        let n = self.rows.len();
        out.push_str(&format!("({n} row{})\n", if n == 1 { "" } else { "s" }));
        out
    }

    /// One JSON object per row, keyed by column name, in an array.
    fn json(&self) -> String {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                Value::Object(
                    self.columns
                        .iter()
                        .cloned()
                        .zip(row.iter().cloned())
                        .collect(),
                )
            })
            .collect();
        let mut out = serde_json::to_string_pretty(&Value::Array(rows)).expect("JSON renders");
        out.push('\n');
        out
    }

    /// RFC 4180: a header line, then one line per row; fields with a comma,
    /// quote or line break are quoted, quotes doubled.
    fn csv(&self) -> String {
        let line = |fields: Vec<String>| -> String {
            let quoted: Vec<String> = fields.into_iter().map(|f| csv_field(&f)).collect();
            quoted.join(",") + "\r\n"
        };
        let mut out = line(self.columns.clone());
        for row in &self.rows {
            out.push_str(&line(row.iter().map(cell).collect()));
        }
        out
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> ResultSet {
        ResultSet::from_server(&json!({
            "schema": {"elements": [
                {"name": {"some": "id"}, "algebraic_type": {"U64": []}},
                {"name": {"some": "text"}, "algebraic_type": {"String": []}}
            ]},
            "rows": [[1, "hello"], [22, "a, \"quoted\" one"]]
        }))
    }

    #[test]
    fn renders_tables_json_and_csv() {
        let rs = sample();
        assert_eq!(
            rs.render(Format::Table, false),
            " id | text\n----+-----------------\n 1  | hello\n 22 | a, \"quoted\" one\n(2 rows)\n"
        );
        let json: Value = serde_json::from_str(&rs.render(Format::Json, true)).unwrap();
        assert_eq!(
            json,
            json!([{"id": 1, "text": "hello"}, {"id": 22, "text": "a, \"quoted\" one"}])
        );
        assert_eq!(
            rs.render(Format::Csv, true),
            "id,text\r\n1,hello\r\n22,\"a, \"\"quoted\"\" one\"\r\n"
        );
        // Only a table's header row is ever styled.
        assert!(rs
            .render(Format::Table, true)
            .starts_with("\x1b[1m id | text\x1b[0m\n----+"));
    }
}
