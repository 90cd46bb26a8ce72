//! The guest side of Spin's cron trigger plugin, seen from the host: the
//! `fermyon:spin-cron@2.0.0` world in the project's `wit/`.

wasmtime::component::bindgen!({
    path: "../../wit/spin-cron.wit",
    world: "spin-cron",
    exports: { default: async },
});
