//! SpiderGo's `/v1/*` API and `/history`: the request options (`options`), one runner that
//! crawls, records and streams (`run`), the history tables (`history`), async jobs (`jobs`) and
//! the handlers (`http`).

pub mod history;
pub mod http;
pub mod jobs;
pub mod options;
pub mod run;
