//! httpd-runner
