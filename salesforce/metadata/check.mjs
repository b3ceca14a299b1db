// Converts salesforce/metadata to Metadata API format with the Salesforce CLI's own library
// (@salesforce/source-deploy-retrieve), as `sf project deploy start` does before deploying:
// a file it cannot resolve or convert is an error here rather than on an admin's deploy.
// Prints the components of each package directory; exits 1 on any error.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ComponentSet, MetadataConverter } from '@salesforce/source-deploy-retrieve';

const root = dirname(fileURLToPath(import.meta.url));
const project = JSON.parse(readFileSync(join(root, 'sfdx-project.json'), 'utf8'));
// Paths relative to the project, as the sf CLI resolves them: the library reads a folder named
// like a bundle type anywhere in an absolute path (a checkout in ~/src/lwc/) as that bundle.
process.chdir(root);

async function check(packageDir) {
  const components = ComponentSet.fromSource(packageDir);
  const listed = components.toArray();
  if (listed.length === 0) {
    throw new Error(`${packageDir}: no metadata components found`);
  }
  const result = await new MetadataConverter().convert(components, 'metadata', { type: 'zip' });
  if (!result.zipBuffer || result.zipBuffer.length === 0) {
    throw new Error(`${packageDir}: the conversion produced nothing`);
  }
  const byType = {};
  for (const component of listed) {
    byType[component.type.name] = (byType[component.type.name] ?? 0) + 1;
  }
  const types = Object.entries(byType).map(([type, n]) => `${n} ${type}`).join(', ');
  console.log(`${packageDir}: ${listed.length} components converted (${types})`);
  return listed.length;
}

try {
  let total = 0;
  for (const entry of project.packageDirectories) {
    total += await check(entry.path);
  }
  console.log(`salesforce/metadata: ${total} components, no errors`);
} catch (error) {
  console.error(`salesforce/metadata: ${error.message}`);
  process.exit(1);
}
