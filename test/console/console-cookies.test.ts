import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { reviewForProduction, withProductionDefaults } from "../../src/config/production.js";
import { keyOf } from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { ConsoleClient } from "./console-client.js";

let t: TestWrit | undefined;

afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** The attributes of a Set-Cookie line, lower-cased names, without the name=value pair. */
function attributes(line: string | undefined): Map<string, string> {
  expect(line).toBeDefined();
  const [, ...attrs] = (line as string).split(";").map((p) => p.trim());
  return new Map(
    attrs.map((a) => {
      const eq = a.indexOf("=");
      return eq === -1 ? [a.toLowerCase(), ""] : [a.slice(0, eq).toLowerCase(), a.slice(eq + 1)];
    }),
  );
}

function cookieNamed(client: ConsoleClient, name: string): string | undefined {
  return client.lastSetCookies.find((c) => c.startsWith(`${name}=`));
}

describe("console cookies with console.secure_cookies on (writ serve)", () => {
  it("are __Host- cookies, Secure with Path=/, even over http without X-Forwarded-Proto", async () => {
    t = await startTestWrit({ console: { secure_cookies: true } });
    const client = new ConsoleClient(t);
    // A TLS proxy that sends no X-Forwarded-Proto: writ sees plain http.
    const page = await client.get("/console/login");
    expect(page.status).toBe(200);
    const login = attributes(cookieNamed(client, "__Host-writ_console_login"));
    expect([...login.keys()].sort()).toEqual(
      ["httponly", "max-age", "path", "samesite", "secure"].sort(),
    );
    expect(login.get("path")).toBe("/");
    expect(login.get("samesite")).toBe("Strict");
    expect(client.lastSetCookies.some((c) => c.startsWith("writ_console"))).toBe(false);

    const csrf = ConsoleClient.csrfOf(await page.text());
    const signedIn = await client.post("/console/login", { csrf, key: keyOf(t, "bob") });
    expect(signedIn.status).toBe(303);
    expect(signedIn.headers.get("location")).toBe("/console/requests");
    const session = attributes(cookieNamed(client, "__Host-writ_console"));
    expect([...session.keys()].sort()).toEqual(["httponly", "path", "samesite", "secure"].sort());
    expect(session.get("path")).toBe("/");
    expect(session.has("domain")).toBe(false);
    // The sign-in form's cookie is removed the same way it was set.
    const cleared = attributes(cookieNamed(client, "__Host-writ_console_login"));
    expect(cleared.get("max-age")).toBe("0");
    expect(cleared.has("secure")).toBe(true);
    expect((await client.get("/console/requests")).status).toBe(200);

    // Only the prefixed name counts: an unprefixed cookie (which a plain-http page
    // or a subdomain could set) is not a session.
    const sessionId = client.cookies.get("__Host-writ_console") as string;
    const planted = new ConsoleClient(t);
    planted.cookies.set("writ_console", sessionId);
    expect((await planted.get("/console/requests")).status).toBe(303);

    const out = await client.post("/console/logout", { csrf: await client.csrf() });
    expect(out.status).toBe(303);
    const ended = attributes(cookieNamed(client, "__Host-writ_console"));
    expect(ended.get("max-age")).toBe("0");
    expect(ended.get("path")).toBe("/");
    expect(ended.has("secure")).toBe(true);
    expect(client.cookies.has("__Host-writ_console")).toBe(false);
  });

  it("take forms from the https page behind a TLS proxy, and still refuse other sites", async () => {
    t = await startTestWrit({ console: { secure_cookies: true } });
    const client = new ConsoleClient(t);
    // writ sees http://writ.test; the browser's page is https://writ.test.
    const page = await client.get("/console/login");
    const csrf = ConsoleClient.csrfOf(await page.text());
    const key = keyOf(t, "bob");
    for (const origin of ["https://evil.example", "https://writ.test:8443", "null"]) {
      const refused = await client.post("/console/login", { csrf, key }, { origin });
      expect(refused.status, origin).toBe(403);
    }
    const again = ConsoleClient.csrfOf(await (await client.get("/console/login")).text());
    const signedIn = await client.post(
      "/console/login",
      { csrf: again, key },
      { origin: "https://writ.test", "sec-fetch-site": "same-origin" },
    );
    expect(signedIn.status).toBe(303);
    const out = await client.post(
      "/console/logout",
      { csrf: await client.csrf() },
      { origin: "https://writ.test" },
    );
    expect(out.status).toBe(303);
  });

  it("is the default under writ serve; turning it off there is warned about", async () => {
    const defaults = withProductionDefaults(parseConfig({}));
    expect(defaults.console.secure_cookies).toBe(true);
    expect(
      withProductionDefaults(parseConfig({ console: { secure_cookies: false } })).console
        .secure_cookies,
    ).toBe(false);
    // writ dev leaves it unset: off.
    expect(parseConfig({}).console.secure_cookies).toBeUndefined();

    t = await startTestWrit({ console: { secure_cookies: defaults.console.secure_cookies } });
    const client = new ConsoleClient(t);
    expect((await client.signIn(keyOf(t, "dana"))).status).toBe(303);
    expect(attributes(cookieNamed(client, "__Host-writ_console")).has("secure")).toBe(true);

    const on = await reviewForProduction(defaults, {}, "writ.yaml");
    expect(on.warnings.map((w) => w.key)).not.toContain("console.secure_cookies");
    const off = await reviewForProduction(
      withProductionDefaults(parseConfig({ console: { secure_cookies: false } })),
      {},
      "writ.yaml",
    );
    expect(off.warnings.find((w) => w.key === "console.secure_cookies")?.problem).toMatch(
      /without Secure/,
    );
  });
});

describe("console cookies with console.secure_cookies off (writ dev)", () => {
  it("are plain cookies scoped to /console, without Secure, so http on loopback works", async () => {
    t = await startTestWrit();
    const client = new ConsoleClient(t);
    expect((await client.signIn(keyOf(t, "bob"))).status).toBe(303);
    const session = attributes(cookieNamed(client, "writ_console"));
    expect([...session.keys()].sort()).toEqual(["httponly", "path", "samesite"].sort());
    expect(session.get("path")).toBe("/console");
    expect(session.get("samesite")).toBe("Strict");
    expect(client.lastSetCookies.some((c) => c.startsWith("__Host-"))).toBe(false);
    expect((await client.get("/console/requests")).status).toBe(200);
  });
});
