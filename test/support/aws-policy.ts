/** An IAM policy document, as far as the tests read one. */
export interface PolicyDocument {
  Version: string;
  Statement: Record<string, unknown>[];
}

/** Parses a policy document a test found (a session policy, a role's inline policy). */
export function policyDocumentOf(text: string | undefined): PolicyDocument {
  if (text === undefined) throw new Error("no policy document");
  const parsed = JSON.parse(text) as PolicyDocument;
  if (!Array.isArray(parsed.Statement)) throw new Error("the policy has no Statement list");
  return parsed;
}
