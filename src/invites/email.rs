//! The invite email, in text and HTML.

use super::store::Mail;

pub struct InviteEmail<'a> {
    pub to: &'a str,
    pub brand: &'a str,
    pub provider: &'a str,
    pub link: &'a str,
    pub message: Option<&'a str>,
    pub valid_hours: u64,
}

pub fn invite(e: &InviteEmail<'_>) -> Mail {
    let note = e
        .message
        .map(|m| format!("\n\nTheir message:\n{m}\n"))
        .unwrap_or_default();
    let text = format!(
        "{brand} asks you to add a {provider} API key to their SpiderGate vault.{note}\n\nOpen this link to add it (valid for {hours} hours, usable once):\n{link}\n\nThe key is encrypted as soon as you submit it; {brand} never sees it.\n",
        brand = e.brand,
        provider = e.provider,
        hours = e.valid_hours,
        link = e.link,
    );
    let note_html = e
        .message
        .map(|m| format!("<blockquote>{}</blockquote>", escape(m)))
        .unwrap_or_default();
    let html = format!(
        "<p><strong>{brand}</strong> asks you to add a <strong>{provider}</strong> API key to their SpiderGate vault.</p>{note_html}<p><a href=\"{link}\">Add the key</a> (valid for {hours} hours, usable once).</p><p>The key is encrypted as soon as you submit it; {brand} never sees it.</p>",
        brand = escape(e.brand),
        provider = escape(e.provider),
        link = escape(e.link),
        hours = e.valid_hours,
    );
    Mail {
        to: e.to.to_owned(),
        subject: format!("{} invites you to add a {} key", e.brand, e.provider),
        text,
        html,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
