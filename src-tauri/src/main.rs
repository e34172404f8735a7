//! `keyprov-station`: the desktop window of KeyProv Station.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    keyprov_station::init_logging();
    keyprov_station::run();
}
