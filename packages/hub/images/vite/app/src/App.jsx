export default function App() {
  return (
    <main>
      <h1>Vite sandbox</h1>
      <p>Edit /blaxel/app/src/App.jsx and the page updates.</p>
    </main>
  );
}
