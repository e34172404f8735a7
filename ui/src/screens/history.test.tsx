import { fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AuditEvent, BatchDetail, BatchSummary, CommandError, TokenRow } from "../api";
import { installIpc, resetIpc } from "../test-ipc";
import { History } from "./history";

afterEach(() => {
  resetIpc();
  vi.restoreAllMocks();
});

const batch: BatchSummary = {
  id: 3,
  name: "line-3",
  state: "completed",
  otp: "hotp",
  digits: 6,
  period: null,
  hash: "sha1",
  mode: "local",
  operator: "kim",
  created_at: "2026-12-03T14:00:00Z",
  finished_at: "2026-12-03T14:01:00Z",
  tokens: 2,
  verified: 2,
  failed: 0,
  exports: [],
};

const token = (key_id: string, serial: string): TokenRow => ({
  key_id,
  family: "yubikey",
  model: "YubiKey 5 NFC",
  serial,
  slot: "hotp:1",
  otp: "hotp",
  digits: 6,
  counter: 1,
  period: null,
  state: "verified",
  verification: "device-otp",
  error: null,
});

const entry = (id: number, kind: string, key: number | null): AuditEvent => ({
  id,
  time: "2026-12-03T14:00:0" + id + "Z",
  kind,
  batch: 3,
  serial: "0001",
  key,
  detail: { slot: "hotp:1", attempt: 1 },
  hash_prefix: "ab".repeat(6),
});
const stationLog = [entry(9, "export.written", null), entry(8, "key.verified", 12)];
const batchLog = [entry(8, "key.verified", 12)];

const detail: BatchDetail = { batch, tokens: [token("11", "0001"), token("12", "0002")] };

function setup(extra: Record<string, (a: Record<string, unknown>) => unknown> = {}) {
  const errors: CommandError[] = [];
  const ipc = installIpc({
    batches: () => [batch],
    batch: () => detail,
    audit_log: (args) => (args.batchId === 3 ? batchLog : stationLog),
    ...extra,
  });
  render(<History serverUrl={null} refreshKey={0} onError={(e) => errors.push(e)} />);
  return { ipc, errors };
}

async function openBatch() {
  fireEvent.click(await screen.findByText("line-3"));
  await screen.findByText("Batch line-3: 2 keys");
}

describe("History", () => {
  it("lists batches and shows a batch's keys without secrets", async () => {
    const { ipc } = setup();
    expect((await screen.findByText("line-3")).closest("tr")!.textContent).toContain(
      "2/2 verified",
    );
    await openBatch();
    expect(ipc.calls.find((c) => c.cmd === "batch")!.args).toEqual({ idOrName: "3" });
    const keyRows = document.querySelectorAll("#token-table tbody tr");
    expect(keyRows).toHaveLength(2);
    expect(keyRows[0].textContent).toContain("verified (device-otp)");
    expect(document.querySelectorAll(".secret")).toHaveLength(0);
    expect(ipc.calls.some((c) => c.cmd === "reveal_secret")).toBe(false);
  });

  it("reveals one secret only after the operator confirms", async () => {
    const { ipc } = setup({ reveal_secret: () => "3132333435363738393031323334353637383930" });
    await openBatch();
    const confirm = vi.spyOn(window, "confirm").mockReturnValueOnce(false);
    fireEvent.click(screen.getAllByText("Reveal")[0]);
    expect(confirm).toHaveBeenCalledTimes(1);
    expect(ipc.calls.some((c) => c.cmd === "reveal_secret")).toBe(false);
    confirm.mockReturnValueOnce(true);
    fireEvent.click(screen.getAllByText("Reveal")[0]);
    await screen.findByText("3132333435363738393031323334353637383930");
    expect(ipc.calls.find((c) => c.cmd === "reveal_secret")!.args).toEqual({ keyId: "11" });
    expect(screen.getAllByText("Reveal")).toHaveLength(1);
  });

  it("re-issues one token and shows its stage while it runs", async () => {
    let finish!: (v: unknown) => void;
    const { ipc } = setup({ reissue: () => new Promise((r) => (finish = r)) });
    await openBatch();
    fireEvent.click(screen.getAllByText("Re-issue")[1]);
    await waitFor(() => expect(ipc.calls.some((c) => c.cmd === "reissue")).toBe(true));
    expect(ipc.calls.find((c) => c.cmd === "reissue")!.args.request).toEqual({
      serial: "0002",
      mode: { kind: "local" },
      export: null,
    });
    ipc.push("reissue", "onProgress", {
      batch_id: 4,
      serial: "0002",
      family: "yubikey",
      stage: "writing",
      attempt: 1,
      message: null,
      finished: 0,
      total: 1,
    });
    await screen.findByText("writing");
    finish({ ...batch, id: 4 });
    await waitFor(() => expect(screen.getAllByText("Re-issue")).toHaveLength(2));
    expect(ipc.calls.filter((c) => c.cmd === "batches").length).toBeGreaterThanOrEqual(2);
  });

  it("re-exports the batch", async () => {
    const { ipc } = setup({
      export_batch: () => ({
        path: "/tmp/x.pskcxml",
        sha256: "cd".repeat(32),
        protection: "key",
        target: "generic",
        keys: 2,
        created_at: "2026-12-03T15:00:00Z",
      }),
    });
    await openBatch();
    fireEvent.change(document.querySelector("#history-export-protection")!, {
      target: { value: "key" },
    });
    fireEvent.input(document.querySelector("#history-export-key")!, {
      target: { value: "00".repeat(16) },
    });
    fireEvent.click(screen.getByText("Export PSKC"));
    await waitFor(() => expect(ipc.calls.some((c) => c.cmd === "export_batch")).toBe(true));
    expect(ipc.calls.find((c) => c.cmd === "export_batch")!.args).toEqual({
      idOrName: "3",
      request: { path: "", protection: { kind: "key", key_hex: "00".repeat(16) }, target: "generic" },
    });
  });

  it("checks the audit chain, intact or broken", async () => {
    let report = { ok: true, events: 42, first_broken: null as string | null };
    setup({ audit_verify: () => report });
    fireEvent.click(await screen.findByText("Check the hash chain"));
    await screen.findByText("Chain intact: 42 events");
    report = { ok: false, events: 42, first_broken: "event 17: hash mismatch" };
    fireEvent.click(screen.getByText("Check the hash chain"));
    await screen.findByText("Chain broken at event 17: hash mismatch (42 events)");
  });

  it("shows the event log of the station, then of the selected batch", async () => {
    const { ipc } = setup();
    await waitFor(() =>
      expect(document.querySelectorAll("#audit-table tbody tr")).toHaveLength(2),
    );
    expect(ipc.calls.find((c) => c.cmd === "audit_log")!.args).toEqual({
      batchId: null,
      limit: 200,
    });
    const first = document.querySelector("#audit-table tbody tr")!.textContent!;
    expect(first).toContain("export.written");
    expect(first).toContain("slot=hotp:1 attempt=1");
    expect(first).toContain("0001");
    expect(first).toContain("abababababab");
    await openBatch();
    await waitFor(() =>
      expect(document.querySelectorAll("#audit-table tbody tr")).toHaveLength(1),
    );
    expect(screen.getByText("Events of batch 3", { exact: false })).toBeTruthy();
  });

  it("passes errors up and shows an empty history", async () => {
    const { errors } = setup({
      batches: () => [],
      audit_verify: () => {
        throw { code: "store", message: "database is locked" };
      },
    });
    await screen.findByText("No batch yet.");
    fireEvent.click(screen.getByText("Check the hash chain"));
    await waitFor(() => expect(errors).toEqual([{ code: "store", message: "database is locked" }]));
  });
});
