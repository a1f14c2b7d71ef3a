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

/// The email sent when a key stopped working.
pub fn reauth(e: &InviteEmail<'_>) -> Mail {
    let text = format!(
        "The {provider} key you added to {brand}'s SpiderGate vault stopped working: the provider refused it several times, so it was taken out of service.\n\nOpen this link to replace it (valid for {hours} hours, usable once); the same key entry is updated in place:\n{link}\n",
        provider = e.provider,
        brand = e.brand,
        hours = e.valid_hours,
        link = e.link,
    );
    let html = format!(
        "<p>The <strong>{provider}</strong> key you added to <strong>{brand}</strong>'s SpiderGate vault stopped working: the provider refused it several times, so it was taken out of service.</p><p><a href=\"{link}\">Replace the key</a> (valid for {hours} hours, usable once). The same key entry is updated in place.</p>",
        provider = escape(e.provider),
        brand = escape(e.brand),
        link = escape(e.link),
        hours = e.valid_hours,
    );
    Mail {
        to: e.to.to_owned(),
        subject: format!(
            "Your {} key for {} needs re-authentication",
            e.provider, e.brand
        ),
        text,
        html,
    }
}
