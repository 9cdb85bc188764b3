//! The self-contained HTML report: one file, inline SVG figures drawn with plotters,
//! inline CSS, no network. A small inline script checks, in the browser, that every
//! figure rendered with a non-empty box and writes the result into `#render-check`
//! (what the headless-browser test reads).

pub mod charts;

use std::fmt::Write;

/// A table of text cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// An inline SVG figure.
#[derive(Debug, Clone)]
pub struct Figure {
    pub id: String,
    pub caption: String,
    pub svg: String,
}

#[derive(Debug, Clone, Default)]
pub struct Section {
    pub id: String,
    pub title: String,
    pub paragraphs: Vec<String>,
    pub figures: Vec<Figure>,
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, Default)]
pub struct Document {
    pub title: String,
    /// Key facts shown under the title (data, as-of date, version...).
    pub meta: Vec<(String, String)>,
    pub sections: Vec<Section>,
}

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}\
header{background:#0b3d5c;color:#fff;padding:18px 28px}header h1{margin:0 0 6px 0;font-size:24px}\
header dl{display:flex;flex-wrap:wrap;gap:4px 22px;margin:0;font-size:13px}header dt{opacity:.75}header dd{margin:0 0 0 4px}\
nav{padding:8px 28px;background:#eef3f6;font-size:14px}nav a{margin-right:14px;color:#0b3d5c}\
main{padding:8px 28px 40px 28px;max-width:1400px}section{margin-top:26px}h2{border-bottom:2px solid #0b3d5c;padding-bottom:4px}\
.figs{display:flex;flex-wrap:wrap;gap:16px}figure.chart{margin:0;background:#fff;border:1px solid #ddd;padding:6px}\
figure.chart svg{display:block;width:640px;height:400px}figcaption{font-size:12px;color:#555;max-width:640px}\
table{border-collapse:collapse;margin:10px 0;font-size:13px;background:#fff}caption{text-align:left;font-weight:600;padding:4px 0}\
div.table{max-width:100%;overflow-x:auto}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}\
td.text{white-space:normal;min-width:16em}th{background:#eef3f6}td:first-child,th:first-child{text-align:left}\
#render-check{display:none}";

const CHECK: &str = r#"(function(){var errors=[];
window.addEventListener('error',function(e){errors.push(String(e.message))});
var ce=console.error;console.error=function(){errors.push(Array.prototype.join.call(arguments,' '));ce.apply(console,arguments)};
window.addEventListener('load',function(){var figs=document.querySelectorAll('figure.chart');var bad=[];
figs.forEach(function(f){var s=f.querySelector('svg');var ok=false;
if(s){var b=s.getBBox();var r=s.getBoundingClientRect();var marks=s.querySelectorAll('circle,polyline,path,rect,polygon,line').length;
ok=b.width>0&&b.height>0&&r.width>0&&r.height>0&&marks>=3;}
f.setAttribute('data-rendered',ok?'yes':'no');if(!ok){bad.push(f.id)}});
document.getElementById('render-check').textContent=JSON.stringify({figures:figs.length,failed:bad,errors:errors});});})();"#;

impl Document {
    pub fn html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>{}</title><style>{STYLE}</style><script>{CHECK}</script></head><body>\n<header><h1>{}</h1><dl>",
            escape(&self.title),
            escape(&self.title)
        );
        for (k, v) in &self.meta {
            let _ = write!(h, "<div><dt>{}</dt><dd>{}</dd></div>", escape(k), escape(v));
        }
        h.push_str("</dl></header>\n<nav>");
        for s in &self.sections {
            let _ = write!(h, "<a href=\"#{}\">{}</a>", escape(&s.id), escape(&s.title));
        }
        h.push_str("</nav>\n<main>\n");
        for s in &self.sections {
            let _ = writeln!(h, "<section id=\"{}\"><h2>{}</h2>", escape(&s.id), escape(&s.title));
            for p in &s.paragraphs {
                let _ = writeln!(h, "<p>{}</p>", escape(p));
            }
            if !s.figures.is_empty() {
                h.push_str("<div class=\"figs\">\n");
                for f in &s.figures {
                    let _ = writeln!(
                        h,
                        "<figure class=\"chart\" id=\"{}\">{}<figcaption>{}</figcaption></figure>",
                        escape(&f.id),
                        f.svg,
                        escape(&f.caption)
                    );
                }
                h.push_str("</div>\n");
            }
            for t in &s.tables {
                // A wide table scrolls inside its box instead of widening the page.
                let _ = write!(h, "<div class=\"table\"><table><caption>{}</caption><thead><tr>", escape(&t.caption));
                for c in &t.header {
                    let _ = write!(h, "<th>{}</th>", escape(c));
                }
                h.push_str("</tr></thead><tbody>");
                for r in &t.rows {
                    h.push_str("<tr>");
                    for c in r {
                        // Numbers and dates stay on one line; sentences may wrap.
                        let class = if c.len() > 32 && c.contains(' ') { " class=\"text\"" } else { "" };
                        let _ = write!(h, "<td{class}>{}</td>", escape(c));
                    }
                    h.push_str("</tr>");
                }
                h.push_str("</tbody></table></div>\n");
            }
            h.push_str("</section>\n");
        }
        h.push_str("</main><pre id=\"render-check\"></pre></body></html>\n");
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_self_contained_and_escaped() {
        let d = Document {
            title: "a <b>".into(),
            meta: vec![("as of".into(), "2024-12-31".into())],
            sections: vec![Section {
                id: "s".into(),
                title: "S & T".into(),
                paragraphs: vec!["p".into()],
                figures: vec![Figure { id: "f".into(), caption: "c".into(), svg: "<svg></svg>".into() }],
                tables: vec![Table { caption: "t".into(), header: vec!["h".into()], rows: vec![vec!["<x>".into()]] }],
            }],
        };
        let html = d.html();
        assert!(html.contains("a &lt;b&gt;") && html.contains("S &amp; T") && html.contains("&lt;x&gt;"));
        assert!(html.contains("<figure class=\"chart\" id=\"f\"><svg></svg>"));
        assert!(
            html.contains("<div class=\"table\"><table>") && html.contains("overflow-x:auto"),
            "wide tables scroll"
        );
        // nothing fetched from elsewhere
        assert!(!html.contains("href=\"http") && !html.contains(" src=") && !html.contains("<link"));
    }
}
