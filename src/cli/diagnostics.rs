//! Definition problems as text: the message, `file:line:column`, and the offending line
//! of the file with a caret under the condition (annotate-snippets, the renderer rustc
//! uses); coloured only on a terminal without `NO_COLOR`.

use annotate_snippets::{Level, Renderer, Snippet};
use cohort::definition::Problem;

/// One problem, ready for stderr (several lines when the file can be shown).
pub fn render(problem: &Problem, colour: bool) -> String {
    let kind = if problem.is_error() {
        "error"
    } else {
        "warning"
    };
    let at = &problem.at;
    let Some((line, text)) = at
        .line
        .and_then(|n| source_line(&at.file, n).map(|t| (n, t)))
    else {
        return format!("{kind}: {problem}");
    };
    let mut title = problem.message.clone();
    if !at.group.is_empty() {
        title.push_str(&format!(" in group '{}'", at.group));
    }
    if !at.path.is_empty() {
        title.push_str(&format!(" ({})", at.path));
    }
    let level = if problem.is_error() {
        Level::Error
    } else {
        Level::Warning
    };
    // Columns count characters; spans are byte ranges of the line.
    let byte = |column: usize| {
        text.char_indices()
            .nth(column.saturating_sub(1))
            .map_or(text.len(), |(i, _)| i)
    };
    let column = at
        .column
        .unwrap_or_else(|| text.chars().take_while(|c| c.is_whitespace()).count() + 1);
    let start = byte(column);
    let end = byte(column + at.width.unwrap_or(text.chars().count()).max(1)).max(start + 1);
    let label = problem.hint.as_deref().unwrap_or("");
    let message = level.title(&title).snippet(
        Snippet::source(&text)
            .line_start(line)
            .origin(&at.file)
            .annotation(
                level
                    .span(start..end.min(text.len().max(start + 1)))
                    .label(label),
            ),
    );
    let renderer = if colour {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let rendered = renderer.render(message).to_string();
    rendered
}

/// Line `n` (1-based) of the file, if it can be read.
fn source_line(file: &str, n: usize) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().nth(n.checked_sub(1)?).map(|l| l.to_string())
}
