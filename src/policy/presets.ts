/**
 * Built-in presets, inherited with `inherit: [preset:NAME]`. The lists and their order are the
 * earlier tool's, rewritten as version 2 files with `allow` rules. A preset's `defaults` is not
 * inherited (no file's is), so it only shapes what its rules allow.
 */

export interface PresetRule {
  readonly match: string;
  readonly reason: string;
}

export interface Preset {
  /** What `inherit` names: `preset:azure`. */
  readonly ref: string;
  /** The policy name inside the preset. */
  readonly name: string;
  readonly description: string;
  readonly rules: readonly PresetRule[];
  /** The preset as a version 2 policy file. */
  readonly text: string;
}

function preset(
  key: string,
  name: string,
  description: string,
  rules: readonly PresetRule[],
): Preset {
  const lines = [
    'version: 2',
    `name: ${name}`,
    `description: ${JSON.stringify(description)}`,
    'rules:',
    ...rules.flatMap((r) => [
      `  - match: ${JSON.stringify(r.match)}`,
      '    action: allow',
      `    reason: ${JSON.stringify(r.reason)}`,
    ]),
    'defaults:',
    '  action: alert',
    '',
  ];
  return { ref: `preset:${key}`, name, description, rules, text: lines.join('\n') };
}

const azure = (match: string, what: string): PresetRule => ({
  match,
  reason: `${what} (BAA-covered)`,
});
const aws = (match: string, what: string): PresetRule => ({
  match,
  reason: `${what} (BAA-eligible)`,
});

export const PRESETS: Readonly<Record<string, Preset>> = Object.freeze({
  azure: preset('azure', 'azure-baa', 'Azure services covered by the Microsoft HIPAA BAA', [
    azure('*.openai.azure.com', 'Azure OpenAI Service'),
    azure('*.cognitiveservices.azure.com', 'Azure Cognitive Services'),
    azure('*.azure.com', 'Azure service endpoint'),
    azure('*.windows.net', 'Azure Storage / SQL'),
    azure('*.database.windows.net', 'Azure SQL Database'),
    azure('*.blob.core.windows.net', 'Azure Blob Storage'),
    azure('*.table.core.windows.net', 'Azure Table Storage'),
    azure('*.queue.core.windows.net', 'Azure Queue Storage'),
    azure('*.vault.azure.net', 'Azure Key Vault'),
    azure('*.servicebus.windows.net', 'Azure Service Bus'),
    azure('*.azure-api.net', 'Azure API Management'),
    azure('*.azurecr.io', 'Azure Container Registry'),
    azure('*.azurewebsites.net', 'Azure App Service'),
  ]),
  aws: preset('aws', 'aws-baa', 'AWS services eligible under the AWS HIPAA BAA', [
    aws('*.bedrock.*.amazonaws.com', 'AWS Bedrock'),
    aws('*.healthlake.*.amazonaws.com', 'AWS HealthLake'),
    aws('*.comprehendmedical.*.amazonaws.com', 'AWS Comprehend Medical'),
    aws('*.sagemaker.*.amazonaws.com', 'AWS SageMaker'),
    aws('*.s3.amazonaws.com', 'AWS S3'),
    aws('*.s3.*.amazonaws.com', 'AWS S3 regional'),
    aws('*.rds.amazonaws.com', 'AWS RDS'),
    aws('*.rds.*.amazonaws.com', 'AWS RDS regional'),
    aws('*.lambda.*.amazonaws.com', 'AWS Lambda'),
    aws('*.dynamodb.*.amazonaws.com', 'AWS DynamoDB'),
    aws('*.kms.*.amazonaws.com', 'AWS KMS'),
    aws('*.secretsmanager.*.amazonaws.com', 'AWS Secrets Manager'),
    aws('*.amazonaws.com', 'AWS service endpoint'),
  ]),
});
