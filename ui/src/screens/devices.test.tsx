import { fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, describe, expect, it } from "vitest";
import { App } from "../app";
import { device, installIpc, resetIpc, settingsView } from "../test-ipc";

afterEach(resetIpc);

function rows() {
  return Array.from(document.querySelectorAll("#device-table tbody tr")).map((tr) =>
    Array.from(tr.querySelectorAll("td")).map((td) => td.textContent),
  );
}

describe("Devices", () => {
  it("says so when no token is attached", async () => {
    installIpc({
      settings_get: () => settingsView(),
      devices: () => [],
      watch_devices: () => null,
    });
    render(<App />);
    expect(await screen.findByText(/No token attached/)).toBeTruthy();
    expect(document.querySelector("#attach-panel")).toBeNull();
    expect(screen.getByText("0 tokens attached")).toBeTruthy();
  });

  it("lists family, model, serial, firmware and state", async () => {
    installIpc({
      settings_get: () => settingsView(),
      devices: () => [
        device("0001"),
        device("NK-77", {
          family: "nitrokey",
          model: "Nitrokey Pro 2",
          firmware: "0.15",
          free_slots: [],
          emulated: false,
        }),
      ],
      watch_devices: () => null,
    });
    render(<App />);
    await screen.findByText("2 tokens attached");
    expect(rows()).toEqual([
      ["yubikey", "YubiKey 5 NFC (emulated)", "0001", "5.4.3", "ready (free: hotp:1, hotp:2)"],
      ["nitrokey", "Nitrokey Pro 2", "NK-77", "0.15", "all slots used"],
    ]);
  });

  it("follows hotplug: arrivals and removals from the watch channel", async () => {
    const ipc = installIpc({
      settings_get: () => settingsView(),
      devices: () => [device("0001")],
      watch_devices: () => null,
    });
    render(<App />);
    await screen.findByText("1 token attached");
    // Listed only once the watcher runs, so no change falls between the two.
    const order = ipc.calls.map((c) => c.cmd).filter((c) => c.endsWith("devices"));
    expect(order).toEqual(["watch_devices", "devices"]);
    ipc.push("watch_devices", "onEvent", { event: "arrived", device: device("0002") });
    await screen.findByText("2 tokens attached");
    ipc.push("watch_devices", "onEvent", { event: "removed", device: device("0001") });
    await screen.findByText("1 token attached");
    expect(rows().map((r) => r[2])).toEqual(["0002"]);
  });

  it("attaches emulated tokens through the demo switch", async () => {
    let view = settingsView(false);
    const ipc = installIpc({
      settings_get: () => view,
      settings_set: (args) => {
        view = { ...view, settings: args.settings as typeof view.settings };
        return view;
      },
      devices: () => [],
      watch_devices: () => null,
      attach_emulated: (args) => {
        const { count } = args.request as { model: string; count: number };
        return Array.from({ length: count }, (_, i) => device(`E${i}`));
      },
    });
    render(<App />);
    await screen.findByText(/No token attached/);
    fireEvent.click(document.querySelector("#demo-switch")!);
    await waitFor(() => expect(document.querySelector("#attach-panel")).not.toBeNull());
    expect(ipc.calls.find((c) => c.cmd === "settings_set")!.args.settings).toMatchObject({
      demo: true,
    });
    fireEvent.input(document.querySelector("#emulator-count")!, { target: { value: "3" } });
    fireEvent.click(screen.getByText("Attach emulated tokens"));
    await screen.findByText("3 tokens attached");
    expect(ipc.calls.find((c) => c.cmd === "attach_emulated")!.args).toEqual({
      request: { model: "yubikey", count: 3 },
    });
  });

  it("shows a failed command as code and message", async () => {
    installIpc({
      settings_get: () => settingsView(),
      devices: () => {
        throw { code: "discovery", message: "token discovery: hidraw3: permission denied" };
      },
      watch_devices: () => null,
    });
    render(<App />);
    const toast = await screen.findByRole("alert");
    expect(toast.textContent).toContain("discovery");
    expect(toast.textContent).toContain("hidraw3: permission denied");
    expect(document.querySelector("#master-key-lost-hint")).toBeNull();
    expect(screen.queryByText("Open Settings")).toBeNull();
  });

  it("shows a lost master key with its message, what to do, and the way to Settings", async () => {
    // What src-tauri sends for keyprov_store::StoreError::MasterKeyLost (see its error.rs test).
    const message =
      "master key /tmp/master.key is missing, but the station database /tmp/station.db holds 4 " +
      "secrets sealed with it; restore master.key from your backup (see README, Security) — a " +
      "new key could not open them";
    installIpc({
      settings_get: () => settingsView(),
      devices: () => {
        throw { code: "master_key_lost", message };
      },
      watch_devices: () => null,
    });
    render(<App />);
    const toast = await screen.findByRole("alert");
    expect(toast.querySelector(".code")!.textContent).toBe("master_key_lost");
    expect(toast.textContent).toContain(message);
    expect(document.querySelector("#master-key-lost-hint")!.textContent).toContain(
      "Restore the master key file named above from your backup",
    );
    fireEvent.click(screen.getByText("Open Settings"));
    expect(await screen.findByText(/In use: \/tmp\/station.db/)).toBeTruthy();
  });
});
