/** Break-glass: allowed at once with a ticket, everyone told, reviewed afterwards. */
export const BREAK_GLASS_POLICY = `
@id("customers-break-glass")
@reason("required")
@ttl("300")
@notify("security")
@review_after("security")
permit (principal, action == Action::"db:export", resource == Resource::"db://prod/customers")
when {
  context has ticket && context.ticket like "INC-*" &&
  context.data has break_glass && context.data.break_glass == true
};
`;

export const BREAK_GLASS = {
  action: "db:export",
  resource: "db://prod/customers",
  audience: "billing-api",
  reason: "customer data corrupted, restoring from export",
  ticket: "INC-4711",
  context: { break_glass: true },
} as const;
