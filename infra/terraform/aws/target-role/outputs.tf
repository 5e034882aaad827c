output "role_arn" {
  description = "The role's ARN: writ's aws.roles[].role_arn."
  value       = aws_iam_role.target.arn
}

output "role_name" {
  description = "The role's name (IAM's policy calls use it without the path)."
  value       = aws_iam_role.target.name
}

output "revocation_policy_name" {
  description = "The inline policy writ maintains on the role; leave it to writ."
  value       = var.revocation_policy_name
}

output "boundary_arn" {
  description = "The role's permissions boundary: the most any session may do, whatever inline policies the role gets."
  value       = aws_iam_policy.boundary.arn
}
