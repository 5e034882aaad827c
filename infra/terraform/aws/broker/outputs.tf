output "role_arn" {
  description = "The ARN of writ's role: give it to every target role as broker_role_arn."
  value       = aws_iam_role.writ.arn
}

output "role_name" {
  description = "The name of writ's role."
  value       = aws_iam_role.writ.name
}
