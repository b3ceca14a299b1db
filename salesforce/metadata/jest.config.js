// Jest for the Lightning web components (make lwc): sfdx-lwc-jest's configuration, run from
// this folder because it finds the components through sfdx-project.json.
const { jestConfig } = require('@salesforce/sfdx-lwc-jest/config');

module.exports = {
    ...jestConfig,
    testMatch: ['**/lwc/**/__tests__/**/*.test.js'],
};
