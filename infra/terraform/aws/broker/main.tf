# writ's own identity. It holds no permission on any resource: it can only
# assume the target roles (with session tags and a source identity, which their
# trust policies require) and maintain the inline deny policy it writes on them
# to end sessions early, and only on roles capped by a permissions boundary.

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
    sid     = "RunWrit"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = var.trusted_principals.type
      identifiers = var.trusted_principals.identifiers
    }
  }
}

resource "aws_iam_role" "writ" {
  name                 = var.name
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "broker" {
  statement {
    sid       = "MintSessions"
    effect    = "Allow"
    actions   = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
    resources = var.target_role_arns
  }

  statement {
    sid       = "ReadDenies"
    effect    = "Allow"
    actions   = ["iam:GetRolePolicy"]
    resources = var.target_role_arns
  }

  # IAM cannot limit PutRolePolicy to one policy name, so writ's role could
  # write any inline policy on a target role and then assume it. Writing is
  # allowed only on roles whose permissions boundary is one of the target-role
  # module's: whatever writ's role writes there, a session can never do more
  # than the boundary, which writ's role cannot change.
  statement {
    sid       = "EndSessions"
    effect    = "Allow"
    actions   = ["iam:PutRolePolicy"]
    resources = var.target_role_arns
    condition {
      test     = "StringLike"
      variable = "iam:PermissionsBoundary"
      values   = var.target_boundary_arns
    }
  }
}

# A separate resource, not an inline_policy block: Terraform then leaves other
# inline policies alone.
resource "aws_iam_role_policy" "broker" {
  name   = "writ-broker"
  role   = aws_iam_role.writ.id
  policy = data.aws_iam_policy_document.broker.json
}
