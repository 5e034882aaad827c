import { describe, expect, it } from "vitest";
import { arnPattern, createAwsCatalogue } from "../../../src/adapters/aws/catalogue.js";
import { WritError } from "../../../src/domain/errors.js";

const catalogue = createAwsCatalogue();

async function codeOf(work: () => unknown): Promise<string | undefined> {
  try {
    await work();
    return undefined;
  } catch (error) {
    if (error instanceof WritError) return error.code;
    throw error;
  }
}

describe("the AWS action catalogue", () => {
  it("knows real actions and their resource ARN forms", async () => {
    const getObject = await catalogue.action("s3:GetObject");
    expect(getObject).toMatchObject({ name: "s3:GetObject", service: "s3", wildcardOnly: false });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: IAM syntax, not a JS template
    expect(getObject.arnTemplates).toContain("arn:${Partition}:s3:::${BucketName}/${ObjectName}");
    const getItem = await catalogue.action("dynamodb:GetItem");
    expect(getItem.arnTemplates).toContain(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: IAM syntax, not a JS template
      "arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}",
    );
    expect((await catalogue.action("s3:ListAllMyBuckets")).wildcardOnly).toBe(true);
  });

  it("refuses unknown, wildcard, misspelled and hostile action names with unknown_aws_action", async () => {
    for (const action of [
      "s3:GetObjects",
      "s3:*",
      "s3:Get*",
      "*",
      "nosuchservice:GetObject",
      "db:export",
      "s3:constructor",
      "s3:__proto__",
      "s3:hasOwnProperty",
      "constructor:GetObject",
      "../../package:GetObject",
      "s3:../../../etc/passwd",
      "s3:GetObject:extra",
      "S3:GetObject",
      "",
    ]) {
      expect(await codeOf(() => catalogue.action(action)), action).toBe("unknown_aws_action");
    }
  });

  it("refuses another spelling of a real action: a Cedar forbid matches the exact name", async () => {
    const error = await catalogue.action("iam:attachrolepolicy").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WritError);
    expect((error as WritError).code).toBe("unknown_aws_action");
    expect((error as WritError).details).toEqual({ did_you_mean: "iam:AttachRolePolicy" });
  });

  it("accepts exactly one resource of a type the action acts on", async () => {
    const getObject = await catalogue.action("s3:GetObject");
    const getItem = await catalogue.action("dynamodb:GetItem");
    const listBucket = await catalogue.action("s3:ListBucket");
    const listAll = await catalogue.action("s3:ListAllMyBuckets");
    const ok: [typeof getObject, string][] = [
      [getObject, "arn:aws:s3:::reports/q3.csv"],
      [getObject, "arn:aws:s3:::reports/2024/q3 final.csv"],
      [getObject, "arn:aws-cn:s3:::reports/q3.csv"],
      [getItem, "arn:aws:dynamodb:eu-west-1:111122223333:table/orders"],
      [listBucket, "arn:aws:s3:::reports"],
      [listAll, "*"],
    ];
    for (const [action, resource] of ok) {
      expect(() => catalogue.assertResource(action, resource), resource).not.toThrow();
    }
    const bad: [typeof getObject, string][] = [
      [getObject, "arn:aws:s3:::reports/*"],
      [getObject, "arn:aws:s3:::reports/q?.csv"],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: IAM syntax, not a JS template
      [getObject, "arn:aws:s3:::reports/${aws:username}"],
      [getObject, "arn:aws:s3:::reports"],
      [getObject, "*"],
      [getObject, "arn:aws:dynamodb:eu-west-1:111122223333:table/orders"],
      [getObject, "s3://reports/q3.csv"],
      [getObject, "arn:aws:s3:::Bad_Bucket/q3.csv"],
      [getItem, "arn:aws:dynamodb:eu-west-1:1111:table/orders"],
      [getItem, "arn:aws:dynamodb:moon-1:111122223333:table/orders"],
      [getItem, "arn:aws:dynamodb:eu-west-1:111122223333:backup/orders"],
      [listBucket, "arn:aws:s3:::reports/q3.csv"],
      [listAll, "arn:aws:s3:::reports"],
    ];
    for (const [action, resource] of bad) {
      expect(
        await codeOf(() => catalogue.assertResource(action, resource)),
        `${action.name} ${resource}`,
      ).toBe("invalid_resource");
    }
  });

  it("compiles ARN templates into anchored patterns", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: IAM syntax, not a JS template
    const role = arnPattern("arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}");
    expect(role.test("arn:aws:iam::111122223333:role/app/reader")).toBe(true);
    expect(role.test("arn:aws:iam::111122223333:role/app/reader\nx")).toBe(false);
    expect(role.test("xarn:aws:iam::111122223333:role/app")).toBe(false);
  });
});
