import type { PatternName, Severity } from './types.js';

export interface RuleInfo {
  severity: Severity;
  /** True for credentials: masked everywhere, and reported even inside comments. */
  secret: boolean;
  /** Lower is more specific: the primary pattern of a merged finding has the lowest rank. */
  rank: number;
  title: string;
  description: string;
}

/** What each pattern means; the SARIF rules and docs/scan.md are written from this table. */
export const RULES: Record<PatternName, RuleInfo> = {
  private_key: {
    severity: 'critical',
    secret: true,
    rank: 0,
    title: 'Private key',
    description: 'A PEM/OpenSSH/PGP private key block is committed in the source.',
  },
  aws_access_key: {
    severity: 'critical',
    secret: true,
    rank: 0,
    title: 'AWS access key id',
    description: 'An AWS access key id (AKIA…/ASIA…) is hard-coded.',
  },
  azure_connection_string: {
    severity: 'critical',
    secret: true,
    rank: 0,
    title: 'Azure storage connection string',
    description: 'An Azure storage connection string with its account key is hard-coded.',
  },
  openai_api_key: {
    severity: 'critical',
    secret: true,
    rank: 0,
    title: 'OpenAI API key',
    description: 'An OpenAI API key (sk-…, sk-proj-…) is hard-coded.',
  },
  github_token: {
    severity: 'critical',
    secret: true,
    rank: 0,
    title: 'GitHub token',
    description: 'A GitHub token (ghp_…, gho_…, github_pat_…) is hard-coded.',
  },
  google_api_key: {
    severity: 'critical',
    secret: true,
    rank: 0,
    title: 'Google API key',
    description: 'A Google API key (AIza…) is hard-coded.',
  },
  slack_token: {
    severity: 'critical',
    secret: true,
    rank: 0,
    title: 'Slack token',
    description: 'A Slack token (xoxb-…, xoxp-…) is hard-coded.',
  },
  slack_webhook: {
    severity: 'critical',
    secret: true,
    rank: 0,
    title: 'Slack webhook URL',
    description: 'A Slack incoming-webhook URL (which is its own credential) is hard-coded.',
  },
  jwt: {
    severity: 'critical',
    secret: true,
    rank: 0,
    title: 'JSON Web Token',
    description: 'A signed JSON Web Token is hard-coded.',
  },
  generic_api_key: {
    severity: 'warning',
    secret: true,
    rank: 6,
    title: 'API key assignment',
    description:
      'A value of 16 or more key-like characters is assigned to an api_key / secret_key / auth_token name.',
  },
  database_url: {
    severity: 'warning',
    secret: false,
    rank: 3,
    title: 'Database connection URL',
    description:
      'A database connection URL (postgres://, mysql://, mongodb+srv://, …); critical when it embeds a password.',
  },
  url: {
    severity: 'warning',
    secret: false,
    rank: 4,
    title: 'HTTP(S) URL',
    description: 'An http:// or https:// URL: a destination the code may send data to.',
  },
  ip_literal: {
    severity: 'warning',
    secret: false,
    rank: 5,
    title: 'IP address literal',
    description: 'An IPv4 address (optionally with a port) written in the source.',
  },
  python_endpoint_kwarg: {
    severity: 'warning',
    secret: false,
    rank: 1,
    title: 'Python endpoint argument',
    description:
      'A keyword argument such as base_url=, endpoint=, azure_endpoint= or host= given a string.',
  },
  python_url_literal: {
    severity: 'warning',
    secret: false,
    rank: 2,
    title: 'Python URL literal',
    description: 'A Python string literal that starts with http(s)://, ws(s):// or ftp://.',
  },
  python_network_call: {
    severity: 'info',
    secret: false,
    rank: 7,
    title: 'Python network call',
    description:
      'A call into requests, httpx, urllib, urllib3, http.client, aiohttp, openai or boto3.',
  },
  js_endpoint_property: {
    severity: 'warning',
    secret: false,
    rank: 1,
    title: 'JavaScript endpoint option',
    description: 'An object property such as baseURL:, endpoint:, host: or url: given a string.',
  },
  js_url_literal: {
    severity: 'warning',
    secret: false,
    rank: 2,
    title: 'JavaScript URL literal',
    description:
      'A JavaScript/TypeScript string or template literal that starts with http(s)://, ws(s):// or ftp://.',
  },
  js_network_call: {
    severity: 'info',
    secret: false,
    rank: 7,
    title: 'JavaScript network call',
    description:
      'A call to fetch, axios, node:http/https/http2, undici, XMLHttpRequest, WebSocket, EventSource or the OpenAI client.',
  },
  r_connection_string: {
    severity: 'warning',
    secret: false,
    rank: 1,
    title: 'R database connection string',
    description:
      'An ODBC/DBI connection string (Driver=…;Server=…); critical when it embeds a password.',
  },
  r_endpoint_argument: {
    severity: 'warning',
    secret: false,
    rank: 1,
    title: 'R endpoint argument',
    description: 'A named argument such as url =, base_url =, host = or server = given a string.',
  },
  r_url_literal: {
    severity: 'warning',
    secret: false,
    rank: 2,
    title: 'R URL literal',
    description: 'An R string literal that starts with http(s)://, ws(s):// or ftp://.',
  },
  r_network_call: {
    severity: 'info',
    secret: false,
    rank: 7,
    title: 'R network call',
    description:
      'A call into httr, httr2, curl, RCurl, download.file, url(), socketConnection or DBI/pool dbConnect.',
  },
};
