import { fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, describe, expect, it } from "vitest";
import type { BatchSummary, ProgressEvent, Stage } from "../api";
import { App } from "../app";
import { device, installIpc, resetIpc, settingsView } from "../test-ipc";

afterEach(resetIpc);

const event = (serial: string, stage: Stage, finished: number, patch = {}): ProgressEvent => ({
  batch_id: 7,
  serial,
  family: "yubikey",
  stage,
  attempt: 1,
  message: null,
  finished,
  total: 2,
  ...patch,
});

const summary = (patch: Partial<BatchSummary> = {}): BatchSummary => ({
  id: 7,
  name: "line-3",
  state: "completed",
  otp: "hotp",
  digits: 6,
  period: null,
  hash: "sha1",
  mode: "local",
  operator: null,
  created_at: "2026-12-03T14:00:00Z",
  finished_at: "2026-12-03T14:01:00Z",
  tokens: 2,
  verified: 2,
  failed: 0,
  exports: [],
  ...patch,
});

/** A pending command the test settles by hand. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function stages() {
  return Array.from(document.querySelectorAll("#run-table tbody tr")).map((tr) => [
    tr.getAttribute("data-serial"),
    tr.querySelector(".stage")!.textContent,
  ]);
}

async function startBatch(handlers: Record<string, (a: Record<string, unknown>) => unknown>) {
  const ipc = installIpc({
    settings_get: () => settingsView(),
    devices: () => [device("0001"), device("0002")],
    watch_devices: () => null,
    ...handlers,
  });
  render(<App initialScreen="new-batch" />);
  await waitFor(() =>
    expect((screen.getByText("Start batch") as HTMLButtonElement).disabled).toBe(false),
  );
  fireEvent.input(document.querySelector("#batch-name")!, { target: { value: "line-3" } });
  fireEvent.click(screen.getByText("Start batch"));
  await screen.findByText(/Run: line-3/);
  return ipc;
}

describe("Run", () => {
  it("shows one row per token moving through its stages, and the progress bar", async () => {
    const run = deferred<BatchSummary>();
    const ipc = await startBatch({ provision: () => run.promise });
    ipc.push("provision", "onProgress", event("0001", "dskpp", 0));
    ipc.push("provision", "onProgress", event("0002", "writing", 0));
    await waitFor(() =>
      expect(stages()).toEqual([
        ["0001", "DSKPP"],
        ["0002", "writing"],
      ]),
    );
    expect(screen.getByText(/Running · 0 of 2 tokens/)).toBeTruthy();
    ipc.push("provision", "onProgress", event("0001", "verifying", 0));
    ipc.push("provision", "onProgress", event("0001", "done", 1));
    await waitFor(() => expect(stages()[0]).toEqual(["0001", "verified"]));
    expect((document.querySelector("#run-progress") as HTMLElement).style.width).toBe("50%");
    ipc.push("provision", "onProgress", event("0002", "done", 2));
    run.resolve(summary());
    await screen.findByText(/Completed · 2 of 2 tokens/);
    expect((document.querySelector("#run-progress") as HTMLElement).style.width).toBe("100%");
    expect(document.querySelector("#cancel-run")).toBeNull();
    expect(screen.getByText("Export this batch")).toBeTruthy();
  });

  it("shows a failed token's error and retries the failed tokens by resuming the batch", async () => {
    const runs = [deferred<BatchSummary>(), deferred<BatchSummary>()];
    let call = 0;
    const ipc = await startBatch({ provision: () => runs[call++].promise });
    ipc.push("provision", "onProgress", event("0001", "done", 1));
    ipc.push(
      "provision",
      "onProgress",
      event("0002", "failed", 2, { attempt: 5, message: "token 0002: unplugged during write" }),
    );
    runs[0].resolve(summary({ state: "failed", verified: 1, failed: 1 }));
    await screen.findByText(/Finished with failures · 2 of 2 tokens, 1 failed/);
    expect(screen.getByText("token 0002: unplugged during write")).toBeTruthy();
    expect(document.querySelector("#resume-run")!.textContent).toBe("Retry failed tokens");

    fireEvent.click(screen.getByText("Retry failed tokens"));
    await screen.findByText(/Running · 1 of 2 tokens/);
    expect(screen.getByText("retrying")).toBeTruthy();
    const provisions = ipc.calls.filter((c) => c.cmd === "provision");
    expect(provisions).toHaveLength(2);
    const first = provisions[0].args.request as Record<string, unknown>;
    expect(provisions[1].args.request).toEqual({ ...first, export: null });
    // The resumed run counts from zero; the screen keeps the batch's own count.
    ipc.push("provision", "onProgress", event("0002", "writing", 0, { attempt: 1 }));
    await waitFor(() => expect(stages()[1]).toEqual(["0002", "writing"]));
    ipc.push("provision", "onProgress", event("0002", "done", 1, { attempt: 1 }));
    runs[1].resolve(summary());
    await screen.findByText(/Completed · 2 of 2 tokens/);
    expect(stages()).toEqual([
      ["0001", "verified"],
      ["0002", "verified"],
    ]);
    expect(document.querySelector("#resume-run")).toBeNull();
  });

  it("cancels a running batch", async () => {
    const run = deferred<BatchSummary>();
    const ipc = await startBatch({
      provision: () => run.promise,
      cancel_run: () => {
        run.resolve(summary({ state: "cancelled", verified: 1 }));
        return true;
      },
    });
    ipc.push("provision", "onProgress", event("0001", "done", 1));
    fireEvent.click(await screen.findByText("Cancel"));
    await screen.findByText(/Cancelled · 1 of 2 tokens/);
    expect(ipc.calls.filter((c) => c.cmd === "cancel_run")).toHaveLength(1);
    expect(screen.getByText("Resume batch")).toBeTruthy();
  });

  it("reports a batch that fails as a whole", async () => {
    await startBatch({
      provision: () => {
        throw { code: "passphrase_required", message: "the master key needs a passphrase" };
      },
    });
    await screen.findByText(/Stopped by an error/);
    const toast = screen.getByRole("alert");
    expect(toast.textContent).toContain("passphrase_required");
    fireEvent.click(screen.getByText("Open Settings"));
    await screen.findByText("Master key");
  });

  it("exports the finished batch with a password", async () => {
    const ipc = await startBatch({
      provision: () => summary(),
      export_batch: (args) => ({
        path: "/data/exports/line-3.pskcxml",
        sha256: "ab".repeat(32),
        protection: "password",
        target: "generic",
        keys: 2,
        created_at: "2026-12-03T14:02:00Z",
        _echo: args,
      }),
    });
    await screen.findByText(/Completed/);
    fireEvent.input(document.querySelector("#run-export-password")!, {
      target: { value: "export-pass-1" },
    });
    fireEvent.input(document.querySelector("#run-export-confirm")!, {
      target: { value: "export-pass-1" },
    });
    fireEvent.click(screen.getByText("Export PSKC"));
    await screen.findByText("/data/exports/line-3.pskcxml");
    expect(ipc.calls.find((c) => c.cmd === "export_batch")!.args).toEqual({
      idOrName: "7",
      request: {
        path: "",
        protection: { kind: "password", password: "export-pass-1" },
        target: "generic",
      },
    });
  });

  it("has nothing to show before a batch", () => {
    installIpc({
      settings_get: () => settingsView(),
      devices: () => [],
      watch_devices: () => null,
    });
    render(<App initialScreen="run" />);
    expect(screen.getByText(/No batch has run in this session/)).toBeTruthy();
  });
});
