// The web UI's user journey in headless Chromium (Debian's, via playwright-core).
// Run by tests/host/tests/browser.rs, which serves the app and a fake Replicate.
// Env: BASE_URL, REPLICATE_TOKEN, CHROMIUM, OUT_DIR.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL;
const OUT = process.env.OUT_DIR;
mkdirSync(OUT, { recursive: true });

const problems = [];
const step = (name) => console.log(`• ${name}`);
function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const context = await browser.newContext({
  viewport: { width: 1280, height: 900 },
});
await context.grantPermissions(["clipboard-read", "clipboard-write"], {
  origin: BASE,
});
const page = await context.newPage();
page.setDefaultTimeout(20000);
// The browser logs every non-2xx fetch as a console error; the UI handles the
// expected ones (401 before sign-in or on a wrong password, 402 for a blocked
// submit) in words, so only those exact lines are allowed. Anything else fails.
// The upload step breaks one part on purpose (net::ERR_FAILED) to resume it.
const EXPECTED = /^Failed to load resource: (the server responded with a status of (401|402)|net::ERR_FAILED)/;
page.on("console", (m) => {
  if (process.env.UI_DEBUG) console.log(`  console.${m.type()}: ${m.text()}`);
  if (m.type() === "error" && !EXPECTED.test(m.text())) problems.push(`console error: ${m.text()}`);
});
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("response", (r) => {
  if (process.env.UI_DEBUG) console.log(`  ${r.request().method()} ${r.url()} -> ${r.status()}`);
  // Expected refusals are 401 (before sign-in) and the blocked submit (402).
  if (r.status() >= 500) problems.push(`HTTP ${r.status()} ${r.url()}`);
});
// Log streams the UI opened: the job view follows a running job's logs over SSE.
const logStreams = [];
page.on("response", (r) => {
  const m = /\/api\/cloud\/jobs\/([^/]+)\/logs\/stream\?offset=\d+$/.exec(r.url());
  if (m) logStreams.push({ job: decodeURIComponent(m[1]), status: r.status() });
});
const shot = (name) => page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
const alertText = () => page.locator("#alerts").innerText();

try {
  step("first run: create the admin");
  await page.goto(BASE);
  await page.waitForURL(/#\/setup/);
  const navHidden = async (where) => {
    check(!(await page.locator("#nav").isVisible()), `no navigation on the ${where} screen`);
    check(!(await page.getByRole("button", { name: "Sign out" }).isVisible()), `no "Sign out" on the ${where} screen`);
  };
  await navHidden("setup");
  await page.getByText("At least 12 characters.").waitFor(); // the server's rule, not 8
  await page.getByLabel("Username").fill("ada");
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Create admin" }).click();
  await page.waitForURL(/#\/jobs/);
  await page.getByText("Needs setup").waitFor();

  step("guided setup: save and validate the Replicate token");
  await page.getByLabel("Replicate API token").fill(process.env.REPLICATE_TOKEN);
  await page.getByRole("button", { name: "Save & validate" }).click();
  await page.getByText(/Connected as fake-user/).waitFor();
  await page.getByText("Ready", { exact: true }).waitFor();

  step("sign out, a wrong password is explained, sign in");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/#\/login/);
  await navHidden("sign-in");
  await page.getByLabel("Username").fill("ada");
  await page.getByLabel("Password").fill("wrong password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#alerts .alert").waitFor();
  check((await alertText()).length > 10, "a failed sign-in says why");
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/#\/jobs/);

  step("train in cloud: invalid JSON is caught before submit");
  await page.getByRole("link", { name: "Train in Cloud" }).first().click();
  await page.waitForURL(/#\/train/);
  await page.getByRole("tab", { name: "Advanced (JSON)" }).click();
  const config = page.getByLabel("Training config (JSON)");
  await config.fill("{ not json");
  await page.getByText(/Not valid:/).waitFor();
  check(await page.getByRole("button", { name: "Submit job" }).isDisabled(), "submit disabled on bad JSON");
  await config.fill(JSON.stringify({ model_type: "lora", "--max_train_steps": 24 }, null, 2));
  await page.getByText(/About \$/).waitFor();
  // The JSON and the tabs are one state: the Training tab shows the edit.
  await page.getByRole("tab", { name: "Training" }).click();
  check((await page.getByLabel("Max steps").inputValue()) === "24", "the Training tab reflects the JSON edit");
  await page.getByRole("tab", { name: "Advanced (JSON)" }).click();
  step("train in cloud: the upload summary counts the local dataset before submit");
  await page
    .getByLabel("Dataloader config (JSON list)")
    .fill(JSON.stringify([{ id: "cats", type: "local", instance_data_dir: "/datasets/cats" }]));
  await page.getByText(/cats \(3 files, 3\.0 KB\)/).waitFor();
  await page.getByLabel("Run name").fill("ui-first-run");
  await page.getByRole("button", { name: "Submit job" }).dblclick();
  await page.getByText("Job submitted").waitFor();
  check(/uploaded 3 files/.test(await page.locator(".alert.ok").innerText()), "the submit reports the upload");
  const firstHref = await page.getByRole("link", { name: "open it" }).getAttribute("href");
  const firstId = decodeURIComponent(firstHref.split("/").pop());

  step("job list: the job goes running with progress and loss, then completed");
  await page.getByRole("link", { name: "Jobs" }).click();
  const row = page.locator(`li[data-job="${firstId}"]`);
  await row.locator('[data-status="running"]').waitFor({ timeout: 30000 });
  const bar = row.getByRole("progressbar");
  await bar.waitFor();
  const first = Number(await bar.getAttribute("aria-valuenow"));
  await page.waitForFunction(
    ([id, v]) => {
      const b = document.querySelector(`li[data-job="${id}"] [role=progressbar]`);
      return b && Number(b.getAttribute("aria-valuenow")) > v;
    },
    [firstId, first],
    { timeout: 30000 },
  );
  check(/loss \d\.\d{4}/.test(await row.innerText()), "the row shows the current loss");
  await shot("job-list-running");
  await row.locator('[data-status="completed"]').waitFor({ timeout: 60000 });
  check((await page.locator("li.job").count()) === 1, "one job, listed once (no duplicate from the double click)");

  step("job details: logs, search, loss chart, output");
  await row.getByRole("link").click();
  await page.waitForURL(/#\/job\//);
  await page.getByText("step 24/24").first().waitFor();
  await page.getByLabel("Search logs").fill("step 12/");
  await page.getByText("1 matching line").waitFor();
  await page.getByRole("img", { name: /Training loss by step/ }).waitFor();
  await page.getByText("Copy curl").click();
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  check(clip.includes(`/api/cloud/jobs/${firstId}`), "copied curl names the job");
  await page.getByLabel("Search logs").fill("");
  // Nothing was uploaded here, so the output is Replicate's copy, and it says so.
  await page.getByRole("link", { name: /lora\.safetensors \(Replicate's copy/ }).waitFor();
  await shot("job-details");

  step("a second job: cancel it (with confirmation)");
  await page.goto(`${BASE}/#/train`);
  await page.getByLabel("Run name").fill("ui-to-cancel");
  await page.getByLabel("Deadline (minutes)").fill("600");
  await page.getByText(/At most \$[\d.]+ with the 600-minute deadline/).waitFor();
  await page.getByRole("button", { name: "Submit job" }).click();
  await page.getByText("Job submitted").waitFor();
  const secondHref = await page.getByRole("link", { name: "open it" }).getAttribute("href");
  const secondId = decodeURIComponent(secondHref.split("/").pop());
  await page.getByRole("link", { name: "open it" }).click();
  await page.locator('h1 [data-status="running"]').waitFor({ timeout: 30000 });
  await page.getByText("600 minutes after submit").waitFor();
  step("a running job's logs arrive over the event stream");
  const before = (await page.locator("pre.logs").innerText()).length;
  await page.waitForFunction(
    (n) =>
      document.querySelector("pre.logs").innerText.length > n &&
      /step \d+\/5000/.test(document.querySelector("pre.logs").innerText),
    before,
    { timeout: 30000 },
  );
  check(
    logStreams.some((r) => r.status === 200 && r.job === secondId),
    `the logs were followed over /logs/stream (${JSON.stringify(logStreams)})`,
  );
  await page.getByRole("button", { name: "Cancel job" }).click();
  await page.getByRole("dialog").waitFor();
  await page.getByRole("dialog").getByRole("button", { name: "Cancel job" }).click();
  await page.locator('h1 [data-status="cancelled"]').waitFor();

  step("re-run the cancelled job: attempt 2 of it");
  await page.getByRole("button", { name: "Re-run" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Re-run" }).click();
  await page.waitForURL((u) => u.hash.startsWith("#/job/") && !u.hash.includes(secondId));
  const rerunId = decodeURIComponent(page.url().split("/").pop());
  await page.getByText("2, re-run of").waitFor();
  await page.locator('h1 [data-status="running"]').waitFor({ timeout: 30000 });
  await shot("job-rerun");

  step("delete the finished first job (with confirmation)");
  await page.goto(`${BASE}/#/job/${encodeURIComponent(firstId)}`);
  // A completed job's action bar holds its one button and nothing else (no stray `false`).
  const actionBar = page.getByRole("button", { name: "Delete job" }).locator("..");
  const barText = (await actionBar.innerText()).trim();
  check(barText === "Delete job", `the action bar shows only its button, not ${JSON.stringify(barText)}`);
  await page.getByRole("button", { name: "Delete job" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete job" }).click();
  await page.waitForURL(/#\/jobs$/);
  await page
    .locator(`li[data-job="${rerunId}"]`)
    .getByText(/attempt 2/)
    .waitFor();
  check((await page.locator(`li[data-job="${firstId}"]`).count()) === 0, "deleted job gone from the list");

  step("events (admin): the log shows what happened, and its chain verifies");
  await page.getByRole("link", { name: "Events" }).click();
  await page.waitForURL(/#\/events/);
  await page.getByRole("table", { name: "Events" }).getByText("job.cancelled").first().waitFor();
  await page.getByLabel("Type").selectOption("auth");
  await page.getByRole("table", { name: "Events" }).getByText("auth.login", { exact: true }).first().waitFor();
  // The wrong password above is anonymous noise: counted per hour under the table, never chained.
  await page
    .getByText(/auth\.login_failed: \d+ unauthenticated/)
    .first()
    .waitFor();
  check(
    (await page.getByRole("table", { name: "Events" }).getByText("job.submitted").count()) === 0,
    "the type filter leaves other events out",
  );
  await page.getByRole("button", { name: "Verify chain" }).click();
  await page.getByText(/Chain intact: \d+ entries checked/).waitFor();
  await shot("events");

  step("settings: create an API key (shown once) and revoke it");
  await page.getByRole("link", { name: "Settings" }).click();
  await page.waitForURL(/#\/settings/);
  await page.getByLabel("Name", { exact: true }).fill("ci-key");
  await page.getByRole("button", { name: "Create key" }).click();
  const key = await page.locator("[data-new-key]").innerText();
  check(/^stk_[A-Za-z0-9]{40}$/.test(key), `a new key is shown once (${key.slice(0, 6)}…)`);
  await page.getByRole("button", { name: "Revoke key ci-key" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
  await page.getByRole("cell", { name: "revoked" }).waitFor();

  step("train in cloud through the tabs: model, training, an uploaded folder, publishing");
  await page.goto(`${BASE}/#/train`);
  await page.getByRole("tab", { name: "Model" }).click();
  await page.getByLabel("Model family").selectOption("flux");
  await page.getByLabel("Flavour").selectOption("dev");
  check(
    (await page.getByLabel("Base model").inputValue()) === "black-forest-labs/flux.1-dev",
    "the flavour's base model is filled in",
  );
  await page.getByLabel("LoRA rank").fill("8");
  await page.getByLabel("LoRA alpha").fill("8");
  check(!(await page.getByLabel("LyCORIS config (JSON)").isVisible()), "the LyCORIS box shows only for LyCORIS");
  await page.getByLabel("LoRA kind").selectOption("lycoris");
  await page.getByLabel("LyCORIS config (JSON)").fill('{"algo": "lokr",');
  await page.getByText("LyCORIS config (JSON): a JSON object").first().waitFor();
  await page.getByLabel("LyCORIS config (JSON)").fill('{"algo": "lokr", "factor": 16}');
  await shot("tab-model");
  await page.getByRole("tab", { name: "Training" }).click();
  await page.getByLabel("Max steps").fill("12");
  await page.getByLabel("Learning rate").fill("0");
  await page.getByText("Learning rate: a number above 0").first().waitFor();
  check(await page.getByRole("button", { name: "Submit job" }).isDisabled(), "submit waits for a valid learning rate");
  await page.getByLabel("Learning rate").fill("0.0002");
  await page.getByLabel("Validation prompt").fill("a photo of sks cat");
  check(!(await page.getByRole("button", { name: "Submit job" }).isDisabled()), "a valid form can be submitted");
  await shot("tab-training");

  await page.getByRole("tab", { name: "Dataloader" }).click();
  await page.getByRole("button", { name: "Add dataset" }).click();
  await page.getByLabel("Choose a folder").setInputFiles(process.env.UPLOAD_DIR);
  await page.getByText(/\.DS_Store: hidden file, not uploaded/).waitFor();
  await page.getByText(/key\.pem: looks like a key or secret, not uploaded/).waitFor();
  check((await page.getByLabel("Dataset name").inputValue()) === "tabs-cats", "the dataset is named after the folder");
  // The big file's second part fails (every retry): the upload stops and says so.
  const partRequests = [];
  page.on("request", (r) => {
    const m = /partNumber=(\d+)/.exec(r.url());
    if (m && r.method() === "PUT") partRequests.push(Number(m[1]));
  });
  const breakPart = (route) => route.abort();
  await page.route(/partNumber=2&/, breakPart);
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  await page.getByText(/Upload stopped: big\.jpg/).waitFor({ timeout: 30000 });
  const barNow = Number(await page.getByRole("progressbar", { name: "Upload progress" }).getAttribute("aria-valuenow"));
  check(barNow > 0 && barNow < 100, `the progress bar shows a partial upload (${barNow}%)`);
  const stoppedState = await page.evaluate(
    async () => (await (await fetch("/api/cloud/datasets")).json()).datasets[0].state,
  );
  check(stoppedState === "uploading", `the stopped dataset is not usable yet (${stoppedState})`);
  await page.unroute(/partNumber=2&/, breakPart);
  await page.getByRole("button", { name: "Resume upload" }).click();
  await page.getByText(/Uploaded tabs-cats: 7 files/).waitFor({ timeout: 30000 });
  check(
    partRequests.filter((n) => n === 1).length === 1,
    `part 1 was sent once, not again on resume (${partRequests})`,
  );
  check(
    (await page.getByRole("progressbar", { name: "Upload progress" }).getAttribute("aria-valuenow")) === "100",
    "the bar ends at 100%",
  );
  await page.getByText(/Will upload 7 files \(4 images, 3 captions\)/).waitFor();
  check((await page.getByLabel("Dataset id").inputValue()) === "tabs-cats", "the dataset id defaults to its name");
  await page.getByText(/tabs-cats \(7 files/).waitFor(); // the submit's upload summary
  await shot("tab-dataloader");

  await page.getByRole("tab", { name: "Publishing" }).click();
  await page.getByLabel("Send the model to").selectOption("hub");
  await page.getByText(/This server has no hf_token/).waitFor();
  await page.getByLabel("Hub repository").fill("ada/flux-cats");
  await shot("tab-publishing");
  await page.getByLabel("Hub repository").fill("");
  await page.getByLabel("Send the model to").selectOption("auto");

  step("the tabs' config is saved, loaded back, and submitted");
  await page.getByRole("tab", { name: "Advanced (JSON)" }).click();
  const built = JSON.parse(await page.getByLabel("Training config (JSON)").inputValue());
  check(
    built["--model_family"] === "flux" &&
      built["--model_flavour"] === "dev" &&
      built["--lora_rank"] === 8 &&
      built["--lora_type"] === "lycoris" &&
      built["--lycoris_config"]?.factor === 16 &&
      built["--max_train_steps"] === 12 &&
      built["--learning_rate"] === 0.0002,
    `the JSON view holds what the tabs set: ${JSON.stringify(built)}`,
  );
  const loader = JSON.parse(await page.getByLabel("Dataloader config (JSON list)").inputValue());
  check(
    loader.length === 1 &&
      loader[0].instance_data_dir === "dataset://tabs-cats" &&
      loader[0].caption_strategy === "textfile",
    `dataloader: ${JSON.stringify(loader)}`,
  );
  await page.getByLabel("Save as").fill("tabs-flux");
  await page.getByRole("button", { name: "Save config" }).click();
  await page.getByText("Saved as tabs-flux.").waitFor();
  await page.reload();
  await page.getByLabel("Configuration", { exact: true }).selectOption("tabs-flux");
  await page.getByRole("tab", { name: "Model" }).click();
  await page.waitForFunction(() => document.querySelector("#panel-model input[type=number]")?.value === "8");
  check((await page.getByLabel("Flavour").inputValue()) === "dev", "loading the config fills the Model tab");
  await page.getByRole("tab", { name: "Dataloader" }).click();
  await page.getByText(/Will upload 7 files/).waitFor();
  await page.getByLabel("Run name").fill("ui-tabs");
  await page.getByRole("button", { name: "Submit job" }).click();
  await page.getByText("Job submitted").waitFor();
  check(/uploaded 7 files/.test(await page.locator(".alert.ok").innerText()), "the submit zipped the uploaded dataset");

  step("settings: a blocking spending limit, and a blocked submit explained");
  await page.getByRole("link", { name: "Settings" }).click();
  await page.waitForURL(/#\/settings/);
  await page.getByLabel("Enable a spending limit").check();
  await page.getByLabel("Limit (USD)").fill("0.01");
  await page.getByLabel("When reached").selectOption("block");
  await page.getByRole("button", { name: "Save limit" }).click();
  await page.getByText(/of \$0\.01 this/).waitFor();
  await shot("settings");
  await page.goto(`${BASE}/#/train`);
  await page.getByLabel("Run name").fill("ui-over-budget");
  await page.getByRole("button", { name: "Submit job" }).click();
  await page.locator("#alerts .alert").waitFor();
  const blocked = await alertText();
  check(/not submitted/i.test(blocked) && /limit/i.test(blocked), `blocked submit explained: ${blocked}`);
  await shot("submit-blocked");

  step("keyboard: the first Tab reaches the skip link, Enter moves to the content");
  await page.goto(`${BASE}/#/jobs`);
  await page.getByText("ui-to-cancel").first().waitFor();
  // A fresh page load leaves focus at the document start; in-app navigation moves it to the heading.
  await page.reload();
  await page.getByText("ui-to-cancel").first().waitFor();
  await page.keyboard.press("Tab");
  check(
    (await page.evaluate(() => document.activeElement?.textContent)) === "Skip to content",
    "skip link first in tab order",
  );
  await page.keyboard.press("Enter");
  check(
    await page.evaluate(() => document.getElementById("view").contains(document.activeElement)),
    "skip link moves focus into the view",
  );
  check((await page.evaluate(() => location.hash)) === "#/jobs", "skip link keeps the route");

  step("dark mode follows the OS");
  await page.emulateMedia({ colorScheme: "dark" });
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check(bg === "rgb(17, 17, 24)", `dark background (${bg})`);
  await shot("job-list-dark");
  await page.emulateMedia({ colorScheme: "light" });

  step("phone width: the job list still reads");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${BASE}/#/jobs`);
  await page.getByText("ui-to-cancel").first().waitFor();
  await shot("job-list-phone");

  step("approvals: a rule holds a submit until the admin approves it on the Approvals page");
  await page.setViewportSize({ width: 1280, height: 900 });
  const ruleSetup = await page.evaluate(async () => {
    const send = (method, path, body) =>
      fetch(path, {
        method,
        credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then((r) => r.status);
    // The budget step's $0.01 block would refuse the approved job: switch it off.
    const limit = await send("PUT", "/api/cloud/providers/replicate", { cost_limit_enabled: false });
    const rule = await send("POST", "/api/approvals/rules", {
      name: "Review every run",
      condition: "provider",
      threshold: "replicate",
    });
    return [limit, rule];
  });
  check(ruleSetup[0] === 200 && ruleSetup[1] === 201, `limit off and rule created (${ruleSetup})`);
  await page.goto(`${BASE}/#/train`);
  await page.getByLabel("Run name").fill("ui-needs-approval");
  await page.getByRole("button", { name: "Submit job" }).click();
  const heldNotice = page.locator("[data-approval-request]");
  await heldNotice.waitFor();
  const heldText = await heldNotice.innerText();
  check(/Waiting for approval: request \d+/.test(heldText), `held submit explained: ${heldText}`);
  const requestId = await heldNotice.getAttribute("data-approval-request");
  await page.locator("#nav").getByRole("link", { name: "Approvals" }).click();
  await page.waitForURL(/#\/approvals/);
  const pendingRow = page.locator(`tr[data-approval="${requestId}"]`);
  await pendingRow.getByRole("button", { name: "Approve" }).waitFor();
  await shot("approvals-pending");
  await page.getByLabel("Reason or note").fill("fine for the demo");
  await pendingRow.getByRole("button", { name: "Approve" }).click();
  await page.locator(`tr[data-approval="${requestId}"] [data-status="approved"]`).waitFor();
  check(
    (await page.locator(`tr[data-approval="${requestId}"]`).innerText()).includes("job"),
    "the approved request links its job",
  );
} catch (e) {
  problems.push(e.stack || String(e));
  await shot("failure").catch(() => {});
  // What the server says of the jobs at the moment of failure (status, progress), beside the page.
  const jobs = await page
    .evaluate(async () => (await fetch("/api/cloud/jobs?limit=10", { credentials: "same-origin" })).text())
    .catch((err) => `could not list jobs: ${err}`);
  problems.push(`server's job list at failure: ${jobs.slice(0, 3000)}`);
}
await browser.close();
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("browser journey passed");
