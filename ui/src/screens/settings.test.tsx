import { fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, describe, expect, it } from "vitest";
import type { Settings, SettingsView } from "../api";
import { App } from "../app";
import { installIpc, resetIpc, settingsView } from "../test-ipc";

afterEach(resetIpc);

function setup(setHandler?: (a: Record<string, unknown>) => unknown) {
  let view: SettingsView = { ...settingsView(), db_from_env: false, effective_db_path: null };
  const ipc = installIpc({
    settings_get: () => view,
    settings_set:
      setHandler ??
      ((args) => {
        const pass = args.passphrase as string | null;
        view = {
          ...view,
          settings: args.settings as Settings,
          effective_db_path: (args.settings as Settings).db_path,
          passphrase_set: pass === null ? view.passphrase_set : pass !== "",
        };
        return view;
      }),
    devices: () => [],
    watch_devices: () => null,
    batches: () => [],
  });
  render(<App initialScreen="settings" />);
  return ipc;
}

const input = (sel: string, value: string) =>
  fireEvent.input(document.querySelector(sel)!, { target: { value } });

describe("Settings", () => {
  it("saves database, server, trust and passphrase; the passphrase field empties", async () => {
    const ipc = setup();
    await screen.findByText(/In use: the default location/);
    input("#db-path", "/srv/keyprov/station.db");
    input("#settings-server-url", "https://prov.example.org/dskpp");
    input("#settings-ca", "/etc/keyprov/ca.pem");
    input("#passphrase", "correct horse battery");
    fireEvent.click(screen.getByText("Save"));
    await screen.findByText("Saved.");
    expect(ipc.calls.find((c) => c.cmd === "settings_set")!.args).toEqual({
      settings: {
        db_path: "/srv/keyprov/station.db",
        server_url: "https://prov.example.org/dskpp",
        server_ca_pem: "/etc/keyprov/ca.pem",
        demo: false,
      },
      passphrase: "correct horse battery",
    });
    expect((document.querySelector("#passphrase") as HTMLInputElement).value).toBe("");
    // The station reopened: the device list and its watcher are fetched again.
    expect(ipc.calls.filter((c) => c.cmd === "watch_devices")).toHaveLength(2);
    expect(screen.getByText(/entered for this session/)).toBeTruthy();
    expect(screen.getByText(/In use: \/srv\/keyprov\/station.db/)).toBeTruthy();
    fireEvent.click(screen.getByText("Forget passphrase"));
    await waitFor(() => expect(screen.getByText(/\(not entered\)/)).toBeTruthy());
    expect(ipc.calls.filter((c) => c.cmd === "settings_set")[1].args.passphrase).toBe("");
  });

  it("shows a refused value and keeps the form", async () => {
    setup(() => {
      throw { code: "invalid_request", message: 'server URL "prov" must start with https://' };
    });
    await screen.findByText(/In use/);
    input("#settings-server-url", "prov");
    fireEvent.click(screen.getByText("Save"));
    const toast = await screen.findByRole("alert");
    expect(toast.textContent).toContain("must start with https://");
    expect(screen.queryByText("Saved.")).toBeNull();
    expect((document.querySelector("#settings-server-url") as HTMLInputElement).value).toBe(
      "prov",
    );
  });

  it("locks the database field when KEYPROV_DB decides", async () => {
    installIpc({
      settings_get: () => settingsView(),
      devices: () => [],
      watch_devices: () => null,
    });
    render(<App initialScreen="settings" />);
    await screen.findByText(/set by KEYPROV_DB/);
    expect(screen.getByText(/Trusted now: the system roots/)).toBeTruthy();
    expect((document.querySelector("#db-path") as HTMLInputElement).disabled).toBe(true);
  });
});
