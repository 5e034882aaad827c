# A role writ assumes on an agent's behalf. Its trust policy admits writ's role
# only, and only for sessions that carry writ's tags (writ-request, writ-grant)
# and a source identity (the agent, recorded by CloudTrail on every call), so
# every session of this role can be denied by its grant tag.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "WritAssumes"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = [var.broker_role_arn]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/writ-grant"
      values   = ["false"]
    }
    condition {
      test     = "Null"
      variable = "sts:SourceIdentity"
      values   = ["false"]
    }
    dynamic "condition" {
      for_each = var.external_id == null ? [] : [var.external_id]
      content {
        test     = "StringEquals"
        variable = "sts:ExternalId"
        values   = [condition.value]
      }
    }
  }

  statement {
    sid     = "WritTags"
    effect  = "Allow"
    actions = ["sts:TagSession"]
    principals {
      type        = "AWS"
      identifiers = [var.broker_role_arn]
    }
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["writ-request", "writ-grant"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/writ-grant"
      values   = ["false"]
    }
  }

  statement {
    sid     = "WritSourceIdentity"
    effect  = "Allow"
    actions = ["sts:SetSourceIdentity"]
    principals {
      type        = "AWS"
      identifiers = [var.broker_role_arn]
    }
    condition {
      test     = "Null"
      variable = "sts:SourceIdentity"
      values   = ["false"]
    }
  }
}

# The same document again, as the role's permissions boundary: writ's role may
# write inline policies on this role (that is how it ends sessions), and the
# boundary keeps anything it writes from letting a session do more than this.
resource "aws_iam_policy" "boundary" {
  name   = "${var.name}-boundary"
  path   = "/writ-targets/"
  policy = var.policy_json
  tags   = var.tags
}

resource "aws_iam_role" "target" {
  name                 = var.name
  path                 = "/writ-targets/"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = var.max_session_duration
  permissions_boundary = aws_iam_policy.boundary.arn
  tags                 = var.tags
}

# Separate aws_iam_role_policy resources, never an inline_policy block on the
# role: with one, Terraform would delete writ's revocation policy on every apply.
resource "aws_iam_role_policy" "permissions" {
  name   = "permissions"
  role   = aws_iam_role.target.id
  policy = var.policy_json
}

# No session of this role may change the role itself: otherwise a session that
# holds an IAM action could remove writ's deny, or widen what sessions can do.
data "aws_iam_policy_document" "guard" {
  statement {
    sid    = "NoSelfChange"
    effect = "Deny"
    actions = [
      "iam:AttachRolePolicy",
      "iam:DeleteRolePermissionsBoundary",
      "iam:DeleteRolePolicy",
      "iam:DetachRolePolicy",
      "iam:PutRolePermissionsBoundary",
      "iam:PutRolePolicy",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:UpdateAssumeRolePolicy",
      "iam:UpdateRole",
    ]
    resources = [aws_iam_role.target.arn]
  }
}

resource "aws_iam_role_policy" "guard" {
  name   = "writ-guard"
  role   = aws_iam_role.target.id
  policy = data.aws_iam_policy_document.guard.json
}
