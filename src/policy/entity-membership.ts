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

/**
 * The `in` tests against a single entity in a policy, in Cedar's JSON policy
 * form. `source`, the policy's text, tells an action list of one
 * (`action in [Action::"a"]`) from `action in Action::"a"`: Cedar's JSON form
 * holds both the same way, and a list is plain membership however long it is.
 */
export function singleEntityInTests(policy: unknown, source?: string): SingleEntityIn[] {
  const found: SingleEntityIn[] = [];
  if (!isRecord(policy)) return found;
  for (const subject of ["principal", "action", "resource"] as const) {
    const scope = policy[subject];
    if (!isRecord(scope)) continue;
    if (subject === "action" && source !== undefined && actionScopeIsList(source)) continue;
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

/**
 * Whether a policy's text writes its action scope as a list (`action in [ … ]`).
 * Reads just enough of Cedar's syntax for that: string literals and `//`
 * comments are skipped, so neither an annotation's text nor a comment can
 * look like the scope; the scope is the parenthesis after `permit` or
 * `forbid`, and the action is its second comma-separated part.
 */
function actionScopeIsList(source: string): boolean {
  // At each place, a string or a comment is tried before a lone character, and
  // whitespace matches nothing: every token of the text, in order.
  const tokens = [...source.matchAll(/"(?:[^"\\]|\\.)*"|\/\/[^\n]*|[A-Za-z_][A-Za-z0-9_]*|\S/g)]
    .map(([text]) => text)
    .filter((text) => !text.startsWith("//"))
    .map((text) => (text.startsWith('"') ? '""' : text));
  const effect = tokens.findIndex(
    (text, index) =>
      (text === "permit" || text === "forbid") &&
      tokens[index - 1] !== "@" &&
      tokens[index + 1] === "(",
  );
  if (effect < 0) return false;
  let depth = 0;
  let part = 0;
  const action: string[] = [];
  for (const text of tokens.slice(effect + 2)) {
    if (depth === 0 && (text === ")" || (text === "," && ++part > 1))) break;
    if (text === "(" || text === "[" || text === "{") depth++;
    if (text === ")" || text === "]" || text === "}") depth--;
    if (part === 1 && !(depth === 0 && text === ",")) action.push(text);
  }
  return action[0] === "action" && action[1] === "in" && action[2] === "[";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
