//! How commands print: JSON for scripts, tables and sentences for people, colours only
//! when stdout is a terminal (and NO_COLOR is unset), never in JSON.

use super::args::OutputFormat;
use super::error::CliError;
use comfy_table::{presets, Cell, Color, ContentArrangement, Table};
use serde::Serialize;
use std::io::{IsTerminal, Write};

/// Where a command's results go (stdout), and in which form.
pub struct Output {
    format: OutputFormat,
    colour: bool,
}

impl Output {
    /// The output for `format`, coloured when stdout is a terminal.
    pub fn new(format: OutputFormat) -> Self {
        Self {
            format,
            colour: format == OutputFormat::Table
                && std::io::stdout().is_terminal()
                && colours_allowed(),
        }
    }

    /// Whether the user asked for JSON.
    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints a JSON document, pretty.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), CliError> {
        let text =
            serde_json::to_string_pretty(value).map_err(|e| CliError::unexpected(e.to_string()))?;
        self.line(&text)
    }

    /// Prints a JSON document on one line (for streams: one event or log line per line).
    pub fn json_line<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), CliError> {
        let text = serde_json::to_string(value).map_err(|e| CliError::unexpected(e.to_string()))?;
        self.line(&text)
    }

    /// Prints one line.
    pub fn line(&self, text: &str) -> Result<(), CliError> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{text}")?;
        // Streams (watch, logs --follow) are read line by line as they come.
        stdout.flush()?;
        Ok(())
    }

    /// A table with this header, styled for this output.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        table
            .load_style(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if self.colour {
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        table.set_header(header.iter().map(|h| self.bold(h)));
        table
    }

    /// Prints a table, its first column flush with the left margin.
    pub fn print_table(&self, mut table: Table) -> Result<(), CliError> {
        if let Some(first) = table.column_mut(0) {
            first.set_padding((0, 1));
        }
        for line in table.lines() {
            self.line(line.trim_end())?;
        }
        Ok(())
    }

    /// Prints `name  value` pairs aligned, for one object (`status`, `usecase show`).
    pub fn fields(&self, fields: &[(&str, String)]) -> Result<(), CliError> {
        let width = fields.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, value) in fields {
            self.line(&format!("{name:<width$}  {value}"))?;
        }
        Ok(())
    }

    /// A header cell, bold when colours are on.
    fn bold(&self, text: &str) -> Cell {
        let cell = Cell::new(text);
        if self.colour {
            cell.add_attribute(comfy_table::Attribute::Bold)
        } else {
            cell
        }
    }

    /// A deployment status as a table cell, coloured by how it is going.
    pub fn status_cell(&self, status: &str) -> Cell {
        let cell = Cell::new(status);
        match (self.colour, status_colour(status)) {
            (true, Some(colour)) => cell.fg(colour),
            _ => cell,
        }
    }

    /// A deployment status inside a sentence, coloured by how it is going.
    pub fn status_text(&self, status: &str) -> String {
        if !self.colour {
            return status.to_owned();
        }
        let code = match status_colour(status) {
            Some(Color::Green) => "32",
            Some(Color::Red) => "31",
            Some(Color::Yellow) => "33",
            Some(_) => "2",
            None => return status.to_owned(),
        };
        format!("\x1b[{code}m{status}\x1b[0m")
    }
}

/// Whether the user's environment allows colours at all (https://no-color.org).
pub fn colours_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The colour of a status: a deployment's (`deployed`) or a named deployment's (`Ready`).
fn status_colour(status: &str) -> Option<Color> {
    match status {
        "deployed" | "Ready" => Some(Color::Green),
        "error" | "Error" => Some(Color::Red),
        "pending" | "deploying" | "Pending" | "Provisioning" | "Deleting" => Some(Color::Yellow),
        "superseded" | "undeployed" | "Stopped" => Some(Color::DarkGrey),
        _ => None,
    }
}
