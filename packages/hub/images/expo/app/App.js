import { StatusBar } from "expo-status-bar";
import { StyleSheet, Text, View } from "react-native";

export default function App() {
  return (
    <View style={styles.container}>
      <Text>Expo sandbox: edit /blaxel/app/App.js</Text>
      <StatusBar style="auto" />
    </View>
  );
}

const styles = StyleSheet.create({ container: { flex: 1, alignItems: "center", justifyContent: "center" } });
