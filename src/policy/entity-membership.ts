/**
 * Finds `in` tests against a single entity (`resource in Resource::"db://prod"`,
 * `principal in Agent::"x"`, `action in Action::"writes"`), in a policy's scope or
 * its conditions. Cedar reads `in` as "is this entity or one of its ancestors",
 * and writ sends every entity without parents (see cedar-request.ts): such a test
 * holds only for that exact entity. A guardrail written as
 * `forbid (principal, action, resource in Resource::"db://prod")` would then
 * cover almost nothing of what its author meant. `in` against a set
 * (`action in [Action::"a", Action::"b"]`) is plain membership and stays.
 */

/** One `in` test against a single entity, as the policy spells it. */
export interface SingleEntityIn {
  /** `principal`, `action`, `resource`, or `…` for any other expression. */
  readonly subject: string;
  /** `Type::"id"` for an entity literal, a variable's name, or `…`. */
  readonly target: string;
  /** The entity literal's type and id, when the target is one. */
  readonly entity?: { readonly type: string; readonly id: string };
}

/** The `in` tests against a single entity in a policy, in Cedar's JSON policy form. */
export function singleEntityInTests(policy: unknown): SingleEntityIn[] {
  const found: SingleEntityIn[] = [];
  if (!isRecord(policy)) return found;
  for (const subject of ["principal", "action", "resource"] as const) {
    const scope = policy[subject];
    if (!isRecord(scope)) continue;
    // `principal in E` is `{op: "in", entity}` (a set would be `entities`);
    // `principal is T in E` is `{op: "is", in: {entity}}`.
    const single =
      scope.op === "in" ? scope.entity : isRecord(scope.in) ? scope.in.entity : undefined;
    if (single !== undefined) found.push({ subject, ...describeEntity(single) });
  }
  const conditions = Array.isArray(policy.conditions) ? policy.conditions : [];
  for (const condition of conditions) {
    if (isRecord(condition)) walkExpression(condition.body, found);
  }
  return found;
}

/** The load error for a policy with such tests, saying what to write instead. */
export function describeSingleEntityIn(tests: readonly SingleEntityIn[]): string {
  const shown = tests.map((test) => `\`${test.subject} in ${test.target}\``).join(", ");
  const [first] = tests;
  return (
    `${shown} ${tests.length > 1 ? "hold" : "holds"} only for ` +
    `${tests.length > 1 ? "those exact entities" : "that exact entity"}: ` +
    "writ sends no entity hierarchy (agents, actions and resources have no parents), " +
    `so \`in\` covers nothing under an entity. ${first === undefined ? "" : instead(first)}`
  );
}

function instead({ subject, target, entity }: SingleEntityIn): string {
  const exact = `write \`${subject} == ${target}\` for that one entity`;
  if (entity === undefined) return `Instead ${exact}`;
  if (subject === "resource") {
    return `Instead ${exact}, or \`resource.uri like ${JSON.stringify(`${entity.id}/*`)}\` for those under it`;
  }
  if (subject === "principal") {
    return `Instead ${exact}, or test an agent attribute (\`principal has team && principal.team == "…"\`)`;
  }
  if (subject === "action") {
    return `Instead ${exact}, or list the actions: \`action in [Action::"…", Action::"…"]\``;
  }
  return `Instead ${exact}`;
}

/**
 * Walks one expression of Cedar's JSON form: an object with a single key, the
 * operator, whose value holds the operands. Literals (`Value`) are not walked:
 * an entity reference inside one is data, not a test.
 */
function walkExpression(node: unknown, found: SingleEntityIn[]): void {
  if (!isRecord(node)) return;
  for (const [operator, operands] of Object.entries(node)) {
    if (operator === "Value") continue;
    const target =
      operator === "in" && isRecord(operands)
        ? operands.right
        : operator === "is" && isRecord(operands)
          ? operands.in
          : undefined;
    // Only an entity literal or a variable is one entity for sure; anything else
    // (an attribute, a set) is plain membership or fails when evaluated, and denies.
    const single = describeTarget(target);
    if (single !== undefined && isRecord(operands)) {
      found.push({ subject: subjectOf(operands.left), ...single });
    }
    walkOperands(operands, found);
  }
}

/** Operands are an expression list, or named expressions (`left`, `right`, a record's fields). */
function walkOperands(operands: unknown, found: SingleEntityIn[]): void {
  const items = Array.isArray(operands)
    ? operands
    : isRecord(operands)
      ? Object.values(operands)
      : [];
  for (const item of items) walkExpression(item, found);
}

function subjectOf(expression: unknown): string {
  return isRecord(expression) && typeof expression.Var === "string" ? expression.Var : "…";
}

/** The target of an `in` when it is a single entity: a literal or a variable. */
function describeTarget(expression: unknown): Omit<SingleEntityIn, "subject"> | undefined {
  if (!isRecord(expression)) return undefined;
  if (
    expression.Var === "principal" ||
    expression.Var === "action" ||
    expression.Var === "resource"
  ) {
    return { target: expression.Var };
  }
  const value = expression.Value;
  return isRecord(value) && isRecord(value.__entity) ? describeEntity(value.__entity) : undefined;
}

function describeEntity(uid: unknown): Omit<SingleEntityIn, "subject"> {
  if (isRecord(uid) && typeof uid.type === "string" && typeof uid.id === "string") {
    const entity = { type: uid.type, id: uid.id };
    return { target: `${entity.type}::${JSON.stringify(entity.id)}`, entity };
  }
  return { target: "…" };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
