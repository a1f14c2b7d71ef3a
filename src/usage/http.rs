//! Usage and trace endpoints (filled in below).
