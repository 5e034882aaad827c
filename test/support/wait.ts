/**
 * Polls `probe` every 100 ms until it resolves true, for at most `timeoutMs`;
 * a probe that throws counts as not yet. For states the test cannot be told
 * of, such as a server's role after a failover.
 */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
